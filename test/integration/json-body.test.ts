/**
 * Bodies are stored as sent or refused (issue 8, item 6): duplicate keys and unsafe integers are 400, `__proto__`
 * in metadata is kept and hashed, nesting is bounded, and the byte cap holds both with and without Content-Length
 * (checked on a real @hono/node-server, where the fast path is).
 */
import type { AddressInfo } from "node:net";
import http from "node:http";
import { serve } from "@hono/node-server";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseStrictJson, StrictJsonError } from "../../src/http/strict-json.js";
import { LIMITS } from "../../src/http/schemas.js";
import { ADMIN_KEY, createHarness, uniqueId, type ApiResponse } from "../support/harness.js";

const harness = createHarness();
afterAll(() => harness.close());

async function entryCount(account: string): Promise<number> {
  const [row] = await harness.database.query<{ n: number }>("SELECT count(*)::int AS n FROM entries WHERE account_id = $1", [account]);
  return row!.n;
}
const postText = (path: string, text: string) => harness.request("POST", path, { body: text });
function expectValidation(response: ApiResponse, field: string) {
  expect(response.status, JSON.stringify(response.body)).toBe(400);
  expect(response.body.code).toBe("validation_failed");
  expect(response.body.errors.map((error: { field: string }) => error.field)).toContain(field);
}
const nested = (depth: number): unknown => (depth === 1 ? { leaf: true } : { inner: nested(depth - 1) });

describe("the strict parser", () => {
  it("agrees with JSON.parse on ordinary JSON", () => {
    for (const text of ['{"a":[1,-2.5e3,true,false,null,"x\\u00e9\\n\\"y"],"b":{}}', "[]", '"s"', "0", " {\"k\" : 1 } "]) {
      expect(parseStrictJson(text, { depth_max: 32 })).toEqual(JSON.parse(text));
    }
  });

  it.each(["{", '{"a":1,}', "[1,]", "01", "1.", "-", '"\u0001"', '{"a" 1}', "tru", "{} x", '"\\x"'])("%j is a syntax error", (text) => {
    expect(() => parseStrictJson(text, { depth_max: 32 })).toThrow(expect.objectContaining({ kind: "syntax" }) as StrictJsonError);
    expect(() => JSON.parse(text)).toThrow();
  });

  // The common path counts keys in the text to spot a duplicate: strings holding quotes, colons and backslashes
  // must neither hide one nor invent one.
  it.each([
    ['{"a":"x\\":","b":1}', false],
    [JSON.stringify({ a: "\\", b: '\\":', c: '":"' }), false],
    ['{"k\\"ey":1,"k\\"ey":2}', true],
    ['{"a":"\\\\","a":1}', true],
    ['[{"a":1},{"a":1}]', false],
    ['{"a":{"b":1},"c":{"b":1}}', false],
    ['{"a":{"b":1,"b":1}}', true],
    ['{"a" : 1 , "a"\n:\t2}', true],
    ['{"__proto__":1,"__proto__":2}', true],
  ])("%s has a duplicate key: %s", (text, duplicate) => {
    const parse = () => parseStrictJson(text, { depth_max: 32 });
    if (duplicate) expect(parse).toThrow(/twice/);
    else expect(parse()).toEqual(JSON.parse(text));
  });

  it("refuses nesting beyond the bound and unsafe integers wherever they are", () => {
    expect(() => parseStrictJson(`${"[".repeat(33)}${"]".repeat(33)}`, { depth_max: 32 })).toThrow(/nested deeper than 32/);
    expect(parseStrictJson(`${"[".repeat(32)}${"]".repeat(32)}`, { depth_max: 32 })).toBeDefined();
    expect(() => parseStrictJson('[1,{"a":[2,-9007199254740992]}]', { depth_max: 32 })).toThrow(expect.objectContaining({ field: "[1].a[1]" }) as StrictJsonError);
    expect(parseStrictJson('[9007199254740991, 1.5e-300, -0.5]', { depth_max: 32 })).toEqual([9007199254740991, 1.5e-300, -0.5]);
    // 1.5e300 is a whole number too, and far beyond 2^53.
    expect(() => parseStrictJson("[1.5e300]", { depth_max: 32 })).toThrow(/whole number/);
  });

  it("keeps __proto__ as an own key, never as the prototype", () => {
    const value = parseStrictJson('{"__proto__":{"polluted":1},"a":2}', { depth_max: 32 }) as Record<string, unknown>;
    expect(Object.getPrototypeOf(value)).toBe(Object.prototype);
    expect(Object.keys(value)).toEqual(["__proto__", "a"]);
    expect(JSON.stringify(value)).toBe('{"__proto__":{"polluted":1},"a":2}');
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});

describe("duplicate keys", () => {
  it("a repeated amount is refused, not the last one posted", async () => {
    const account = await harness.createAccount();
    const response = await postText("/v1/usage", `{"account_id":"${account}","amount":"1","amount":"1000","idempotency_key":"k"}`);
    expectValidation(response, "amount");
    expect(response.body.detail).toMatch(/twice/);
    expect(await entryCount(account)).toBe(0);
  });

  it("inside metadata and inside a batch row, naming the place", async () => {
    const account = await harness.createAccount();
    expectValidation(
      await postText("/v1/usage", `{"account_id":"${account}","amount":"1","idempotency_key":"k","metadata":{"a":{"b":1,"b":2}}}`),
      "metadata.a.b",
    );
    expectValidation(
      await postText("/v1/usage/batch", `{"entries":[{"account_id":"${account}","amount":"1","idempotency_key":"a"},{"account_id":"${account}","account_id":"x","amount":"1","idempotency_key":"b"}]}`),
      "entries[1].account_id",
    );
    expectValidation(await postText("/v1/accounts", `{"id":"${uniqueId()}","id":"${uniqueId()}"}`), "id");
    expect(await entryCount(account)).toBe(0);
  });
});

describe("integers beyond 2^53", () => {
  it("are refused anywhere in the body; the largest safe ones are stored exactly", async () => {
    const account = await harness.createAccount();
    for (const number of ["9007199254740992", "-9007199254740992", "12345678901234567890", "1e300"]) {
      const response = await postText("/v1/usage", `{"account_id":"${account}","amount":"1","idempotency_key":"k","metadata":{"n":${number}}}`);
      expectValidation(response, "metadata.n");
    }
    expect(await entryCount(account)).toBe(0);
    const safe = await postText("/v1/usage", `{"account_id":"${account}","amount":"1","idempotency_key":"k","metadata":{"n":9007199254740991,"m":-9007199254740991,"f":1.5}}`);
    expect(safe.status).toBe(201);
    expect(safe.body.metadata).toEqual({ n: 9007199254740991, m: -9007199254740991, f: 1.5 });
    const [row] = await harness.database.query<{ metadata: string }>("SELECT metadata::text AS metadata FROM entries WHERE account_id = $1", [account]);
    expect(row!.metadata).toBe('{"f": 1.5, "m": -9007199254740991, "n": 9007199254740991}');
  });
});

describe("__proto__ in metadata", () => {
  it("is stored as sent, returned, and part of the request hash", async () => {
    const account = await harness.createAccount();
    const body = (value: number) => `{"account_id":"${account}","amount":"1","idempotency_key":"p","metadata":{"__proto__":{"v":${value}},"model":"m"}}`;
    const created = await postText("/v1/usage", body(1));
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const [row] = await harness.database.query<{ metadata: string }>("SELECT metadata::text AS metadata FROM entries WHERE account_id = $1", [account]);
    expect(row!.metadata).toBe('{"model": "m", "__proto__": {"v": 1}}');
    // The harness parses responses with JSON.parse, which keeps __proto__ as an own key too.
    expect(Object.keys(created.body.metadata).sort()).toEqual(["__proto__", "model"]);
    expect(created.body.metadata.__proto__).toEqual({ v: 1 });
    const replay = await postText("/v1/usage", body(1));
    expect(replay.status).toBe(200);
    expect(replay.body.id).toBe(created.body.id);
    const changed = await postText("/v1/usage", body(2));
    expect(changed.status).toBe(409);
    expect(changed.body.code).toBe("idempotency_key_reused");
    expect(await entryCount(account)).toBe(1);
  });

  it("counts toward the metadata limits", async () => {
    const account = await harness.createAccount();
    const big = JSON.stringify("x".repeat(LIMITS.metadata_bytes_max));
    expectValidation(await postText("/v1/usage", `{"account_id":"${account}","amount":"1","idempotency_key":"k","metadata":{"__proto__":${big}}}`), "metadata");
    expect(await entryCount(account)).toBe(0);
  });
});

describe("nesting depth", () => {
  it(`metadata ${LIMITS.metadata_depth_max} levels deep is accepted, one more is 400`, async () => {
    const account = await harness.createAccount();
    const ok = await harness.post("/v1/usage", { account_id: account, amount: "1", idempotency_key: "deep", metadata: nested(LIMITS.metadata_depth_max) });
    expect(ok.status, JSON.stringify(ok.body)).toBe(201);
    expect(ok.body.metadata).toEqual(nested(LIMITS.metadata_depth_max));
    const deeper = await harness.post("/v1/usage", { account_id: account, amount: "1", idempotency_key: "deeper", metadata: nested(LIMITS.metadata_depth_max + 1) });
    expectValidation(deeper, "metadata");
    expect(deeper.body.detail).toMatch(/nested at most 16/);
    const account_metadata = await harness.post("/v1/accounts", { id: uniqueId(), metadata: nested(LIMITS.metadata_depth_max + 1) });
    expectValidation(account_metadata, "metadata");
    expect(await entryCount(account)).toBe(1);
  });

  it("100,000 levels is a 400, not a stack overflow, on every JSON route", async () => {
    const deep = `${"[".repeat(100_000)}${"]".repeat(100_000)}`;
    for (const path of ["/v1/usage", "/v1/usage/batch", "/v1/credits", "/v1/debits", "/v1/accounts", "/v1/balances/check", "/v1/balances/query"]) {
      const response = await postText(path, `{"metadata":${deep}}`);
      expect(response.status, path).toBe(400);
      expect(response.body.code).toBe("validation_failed");
      expect(response.body.detail).toMatch(/nested deeper than 32/);
    }
  });
});

describe("the byte cap on a real server", () => {
  const small = createHarness({ max_body_bytes: 1024 });
  let server: http.Server;
  let port: number;
  beforeAll(async () => {
    server = serve({ fetch: small.app.fetch, hostname: "127.0.0.1", port: 0 }) as http.Server;
    await new Promise<void>((resolve) => server.once("listening", () => resolve()));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
    await small.close();
  });

  /** One POST; `chunked` sends the body without Content-Length. */
  function send(path: string, body: string, chunked: boolean): Promise<{ status: number; body: any }> {
    return new Promise((resolve, reject) => {
      const headers: http.OutgoingHttpHeaders = { authorization: `Bearer ${ADMIN_KEY}`, "content-type": "application/json" };
      if (!chunked) headers["content-length"] = Buffer.byteLength(body);
      const request = http.request({ host: "127.0.0.1", port, path, method: "POST", headers }, (response) => {
        let text = "";
        response.on("data", (chunk: Buffer) => (text += chunk.toString("utf8")));
        response.on("end", () => resolve({ status: response.statusCode ?? 0, body: JSON.parse(text) }));
      });
      request.on("error", reject);
      if (chunked) {
        // Two writes without a length: node sends Transfer-Encoding: chunked.
        request.write(body.slice(0, 10));
        request.write(body.slice(10));
      } else {
        request.write(body);
      }
      request.end();
    });
  }

  it.each([false, true])("chunked %s: over the cap is 413, under it is posted", async (chunked) => {
    const account = await small.createAccount();
    const body = (description: string, key: string) => JSON.stringify({ account_id: account, amount: "1", idempotency_key: key, description });
    const over = await send("/v1/usage", body("d".repeat(1100), "over"), chunked);
    expect(over.status).toBe(413);
    expect(over.body.code).toBe("payload_too_large");
    const under = await send("/v1/usage", body("d".repeat(800), "under"), chunked);
    expect(under.status, JSON.stringify(under.body)).toBe(201);
    const duplicate = await send("/v1/usage", `{"account_id":"${account}","amount":"1","amount":"2","idempotency_key":"dup"}`, chunked);
    expect(duplicate.status).toBe(400);
    const [row] = await small.database.query<{ n: number }>("SELECT count(*)::int AS n FROM entries WHERE account_id = $1", [account]);
    expect(row!.n).toBe(1);
  });
});

describe("the OpenAPI document states what is enforced", () => {
  it("every metadata field documents the limits the validator applies", async () => {
    const document = (await harness.get("/openapi.json")).body;
    const schemas = document.components.schemas as Record<string, { properties?: Record<string, any> }>;
    const withMetadata = Object.entries(schemas).filter(([name, schema]) => schema.properties?.metadata && name.endsWith("Request"));
    expect(withMetadata.map(([name]) => name).sort()).toEqual(expect.arrayContaining(["CreditRequest", "DebitRequest", "UsageRequest"]));
    for (const [, schema] of withMetadata) {
      const metadata = schema.properties!.metadata;
      expect(metadata.type).toBe("object");
      expect(metadata.maxProperties).toBe(LIMITS.metadata_keys_max);
      for (const limit of [LIMITS.metadata_bytes_max, LIMITS.metadata_depth_max, LIMITS.metadata_key_length_max]) {
        expect(metadata.description).toContain(String(limit));
      }
      expect(metadata.description).toMatch(/__proto__/);
      expect(metadata.description).toMatch(/2\^53/);
    }
  });
});
