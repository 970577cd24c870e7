import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ERROR_CATALOGUE, type ErrorCode } from "../../src/errors.js";
import { encodeCursor } from "../../src/http/cursor.js";
import { ACCOUNTS_CURSOR_BINDING } from "../../src/http/routes/accounts.js";
import { createHarness, uniqueId, type ApiResponse } from "../support/harness.js";

const harness = createHarness();
afterAll(() => harness.close());

async function entryCount(account: string): Promise<number> {
  const [row] = await harness.database.query<{ n: number }>("SELECT count(*)::int AS n FROM entries WHERE account_id = $1", [account]);
  return row!.n;
}
async function balance(account: string): Promise<string> {
  return (await harness.get(`/v1/balances/${account}`)).body.balance;
}
function expectProblem(response: ApiResponse, status: number, code: ErrorCode) {
  expect(response.status, JSON.stringify(response.body)).toBe(status);
  expect(response.headers.get("content-type")).toMatch(/^application\/problem\+json/);
  expect(response.body).toMatchObject({ status, code, type: `https://tally.dev/problems/${code}`, title: ERROR_CATALOGUE[code].title });
}
const fields = (response: ApiResponse): string[] => (response.body.errors ?? []).map((error: { field: string }) => error.field);
function expectInvalid(response: ApiResponse, field: string) {
  expectProblem(response, 400, "validation_failed");
  expect(fields(response)).toContain(field);
}

/** A body each route accepts for `account`; tests break one thing in it. */
function validBody(path: string, account: string, key = uniqueId("key")): Record<string, unknown> {
  const posting = { account_id: account, amount: "1", idempotency_key: key };
  switch (path) {
    case "/v1/usage": return posting;
    case "/v1/credits": return { ...posting, type: "purchase" };
    case "/v1/debits": return { ...posting, allow_overdraft: true };
    case "/v1/usage/batch": return { entries: [posting] };
    case "/v1/balances/check": return { account_id: account, amount: "1" };
    case "/v1/balances/query": return { account_ids: [account] };
    case "/v1/accounts": return { id: uniqueId() };
    default: throw new Error(path);
  }
}

describe("amounts", () => {
  const REFUSED: unknown[] = [
    1, 0.1, null, true, "0.30000000000000004", "1e3", "1E-9", "+1", "-1", "0.0000000001", "NaN", "Infinity", "",
    " 1", "1 ", "1.", ".5", "0", "0.000000000", "01", "1000000000000000.000000001", "1000000000000001",
  ];
  const ACCEPTED = ["1000000000000000", "0.000000001", "100.12345678"];
  const ROUTES = [
    { path: "/v1/usage", ok: 201, sign: "-" },
    { path: "/v1/credits", ok: 201, sign: "" },
    { path: "/v1/debits", ok: 201, sign: "-" },
    { path: "/v1/balances/check", ok: 200, sign: undefined },
  ];

  describe.each(ROUTES)("on $path", ({ path, ok, sign }) => {
    let account: string;
    beforeAll(async () => {
      account = await harness.createAccount();
    });

    it.each(REFUSED.map((amount) => [amount]))("%j is refused with 400 naming amount", async (amount) => {
      const response = await harness.post(path, { ...validBody(path, account), amount });
      expectInvalid(response, "amount");
      expect(fields(response)).toEqual(["amount"]);
      expect(await entryCount(account)).toBe(0);
    });

    it("accepts the edge cases exactly", async () => {
      const fresh = await harness.createAccount();
      for (const amount of ACCEPTED) {
        const response = await harness.post(path, { ...validBody(path, fresh), amount });
        expect(response.status, JSON.stringify(response.body)).toBe(ok);
        expect(response.body.amount).toBe(amount);
        if (sign === undefined) expect(response.body).toMatchObject({ balance: "0", sufficient: false, deficit: amount });
      }
      expect(await entryCount(fresh)).toBe(sign === undefined ? 0 : 3);
      expect(await balance(fresh)).toBe(sign === undefined ? "0" : `${sign}1000000000000100.123456781`);
    });
  });
});

describe("body fields", () => {
  let account: string;
  beforeAll(async () => {
    account = await harness.createAccount();
  });
  afterAll(async () => {
    // Nothing in this block may have written to the shared account.
    expect(await entryCount(account)).toBe(0);
  });

  it.each([
    ["/v1/usage", (b: any) => ({ ...b, foo: 1 }), "foo"],
    ["/v1/usage", (b: any) => ({ ...b, type: "purchase" }), "type"],
    ["/v1/credits", (b: any) => ({ ...b, allow_overdraft: true }), "allow_overdraft"],
    ["/v1/debits", (b: any) => ({ ...b, type: "removal" }), "type"],
    ["/v1/usage/batch", (b: any) => ({ ...b, dry_run: true }), "dry_run"],
    ["/v1/usage/batch", (b: any) => ({ entries: [{ ...b.entries[0], type: "usage" }] }), "entries[0].type"],
    ["/v1/balances/check", (b: any) => ({ ...b, idempotency_key: "k" }), "idempotency_key"],
    ["/v1/balances/query", (b: any) => ({ ...b, limit: 5 }), "limit"],
    ["/v1/accounts", (b: any) => ({ ...b, balance: "100" }), "balance"],
  ])("%s refuses an unknown field (%#)", async (path, change, field) => {
    const body = change(validBody(path, account));
    const response = await harness.post(path, body);
    expectInvalid(response, field);
    expect(response.body.errors).toContainEqual({ field, message: "is not a known field" });
    if (path === "/v1/accounts") {
      const [row] = await harness.database.query<{ n: number }>("SELECT count(*)::int AS n FROM accounts WHERE id = $1", [body.id]);
      expect(row!.n).toBe(0);
    }
  });

  it.each([
    ["/v1/usage", "account_id"], ["/v1/usage", "amount"], ["/v1/usage", "idempotency_key"], ["/v1/credits", "type"],
    ["/v1/credits", "amount"], ["/v1/debits", "idempotency_key"], ["/v1/balances/check", "amount"],
    ["/v1/balances/query", "account_ids"], ["/v1/accounts", "id"], ["/v1/usage/batch", "entries"],
  ])("%s refuses a body without %s", async (path, field) => {
    const body = validBody(path, account);
    delete body[field];
    expectInvalid(await harness.post(path, body), field);
  });

  it.each([
    ["/v1/usage", "account_id", 42], ["/v1/usage", "idempotency_key", 7], ["/v1/usage", "description", 5],
    ["/v1/usage", "metadata", "x"], ["/v1/usage", "metadata", [1, 2]], ["/v1/usage", "metadata", null], ["/v1/usage", "metadata", 5],
    ["/v1/usage", "batch_id", "not-a-uuid"], ["/v1/usage", "batch_id", "123"], ["/v1/usage", "batch_id", 5],
    ["/v1/credits", "type", "usage"], ["/v1/credits", "type", "removal"], ["/v1/credits", "type", "Purchase"], ["/v1/credits", "type", 1],
    ["/v1/debits", "allow_overdraft", "yes"], ["/v1/usage/batch", "entries", "x"], ["/v1/usage/batch", "entries", {}],
    ["/v1/balances/query", "account_ids", "x"], ["/v1/accounts", "metadata", [1]],
  ])("%s refuses %s = %j", async (path, field, value) => {
    expectInvalid(await harness.post(path, { ...validBody(path, account), [field]: value }), field);
  });

  it.each(["", "a".repeat(129), "a b", "a/b", "é", "a\nb"])("refuses account id %j everywhere", async (id) => {
    expectInvalid(await harness.post("/v1/usage", { ...validBody("/v1/usage", account), account_id: id }), "account_id");
    expectInvalid(await harness.post("/v1/accounts", { id }), "id");
    expectInvalid(await harness.post("/v1/balances/query", { account_ids: [account, id] }), "account_ids[1]");
    expectInvalid(await harness.post("/v1/usage/batch", { entries: [{ ...validBody("/v1/usage", account), account_id: id }] }), "entries[0].account_id");
  });

  it("refuses a bad account id in the path", async () => {
    expectInvalid(await harness.get(`/v1/balances/${"a".repeat(129)}`), "account_id");
    expectInvalid(await harness.get("/v1/balances/a%20b"), "account_id");
    expectInvalid(await harness.get("/v1/accounts/a%2Fb"), "id");
  });

  it.each([["a".repeat(256)], ["a b"], [""], ["ключ"], ["a\tb"]])("refuses idempotency key %j", async (key) => {
    expectInvalid(await harness.post("/v1/usage", validBody("/v1/usage", account, key)), "idempotency_key");
  });

  it.each([
    ["description", "d".repeat(1001)],
    ["metadata", { blob: "x".repeat(4100) }],
    ["metadata", Object.fromEntries(Array.from({ length: 65 }, (_, index) => [`k${index}`, index]))],
  ])("refuses an oversized %s", async (field, value) => {
    expectInvalid(await harness.post("/v1/usage", { ...validBody("/v1/usage", account), [field]: value }), field);
  });

  it("accepts each limit exactly at its edge", async () => {
    const fresh = await harness.createAccount();
    const at = { description: "d".repeat(1000), metadata: { blob: "x".repeat(4096 - '{"blob":""}'.length) }, batch_id: randomUUID() };
    const response = await harness.post("/v1/usage", { ...validBody("/v1/usage", fresh, "k".repeat(255)), ...at });
    expect(response.status, JSON.stringify(response.body)).toBe(201);
    expect(response.body).toMatchObject({ ...at, idempotency_key: "k".repeat(255) });
    expect((await harness.post("/v1/accounts", { id: "a".repeat(120) + uniqueId("").slice(1, 9) })).status).toBe(201);
  });

  it.each([
    ["description", "a\u0000b"],
    ["metadata", { note: "a\u0000b" }],
    ["metadata", { "a\u0000": 1 }],
  ])("refuses a NUL character in %s (%j) with 400, and never leaks internals", async (field, value) => {
    // PostgreSQL text and jsonb cannot hold U+0000, so the API must refuse it up front.
    const response = await harness.post("/v1/usage", { ...validBody("/v1/usage", account), [field]: value });
    expect(JSON.stringify(response.body)).not.toMatch(/byte sequence|0x00|unicode escape|postgres|INSERT|entries|\.ts:\d+|stack/i);
    expect(Object.keys(response.body).sort()).toEqual(expect.arrayContaining(["code", "detail", "request_id", "status", "title", "type"]));
    expectInvalid(response, field);
  });
});

describe("malformed requests", () => {
  const small = createHarness({ max_body_bytes: 1024 });
  afterAll(() => small.close());

  it.each(["{nope", "", '{"account_id": }', '{"a":1} trailing', "[1,"])("invalid JSON %j is 400 invalid_json", async (text) => {
    const account = await harness.createAccount();
    for (const path of ["/v1/usage", "/v1/usage/batch", "/v1/accounts", "/v1/balances/check"]) {
      expectProblem(await harness.request("POST", path, { body: text }), 400, "invalid_json");
    }
    const truncated = JSON.stringify(validBody("/v1/usage", account)).slice(0, -1);
    expectProblem(await harness.request("POST", "/v1/usage", { body: truncated }), 400, "invalid_json");
    expect(await entryCount(account)).toBe(0);
  });

  it.each(["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/xml"])(
    "content-type %s is 415 unsupported_media_type",
    async (type) => {
      const account = await harness.createAccount();
      const body = validBody("/v1/usage", account);
      expectProblem(await harness.request("POST", "/v1/usage", { body, headers: { "content-type": type } }), 415, "unsupported_media_type");
      expectProblem(await harness.request("POST", "/v1/accounts", { body: { id: uniqueId() }, headers: { "content-type": type } }), 415, "unsupported_media_type");
      expect(await entryCount(account)).toBe(0);
      const charset = await harness.request("POST", "/v1/usage", { body, headers: { "content-type": "application/json; charset=utf-8" } });
      expect(charset.status).toBe(201);
    },
  );

  it("a body over MAX_BODY_BYTES is 413 payload_too_large on every /v1 route, and one under it is served", async () => {
    const account = await small.createAccount();
    const big = { ...validBody("/v1/usage", account), description: "d".repeat(1000) };
    expectProblem(await small.post("/v1/usage", big), 413, "payload_too_large");
    const rows = Array.from({ length: 20 }, () => validBody("/v1/usage", account));
    expectProblem(await small.post("/v1/usage/batch", { entries: rows }), 413, "payload_too_large");
    expectProblem(await small.post("/v1/balances/check", { account_id: account, amount: "1".repeat(1100) }), 413, "payload_too_large");
    expectProblem(await small.post("/v1/accounts", { id: uniqueId(), metadata: { x: "y".repeat(1100) } }), 413, "payload_too_large");
    expect(await entryCount(account)).toBe(0);
    expect((await small.post("/v1/usage", { ...big, description: "d".repeat(800) })).status).toBe(201);
    expect(await entryCount(account)).toBe(1);
  });
});

describe("/v1/usage/batch", () => {
  const row = (account: string, key: string, amount = "1") => ({ account_id: account, amount, idempotency_key: key });

  it("an invalid row at index 7 of 10 names entries[7].amount and writes nothing", async () => {
    const account = await harness.createAccount();
    const entries = Array.from({ length: 10 }, (_, index) => row(account, `k${index}`, index === 7 ? "1e3" : "1"));
    const response = await harness.post("/v1/usage/batch", { entries });
    expectInvalid(response, "entries[7].amount");
    expect(fields(response)).toEqual(["entries[7].amount"]);
    expect(await entryCount(account)).toBe(0);
  });

  it("refuses an empty batch and one of 10,001 rows", async () => {
    const account = await harness.createAccount();
    expectInvalid(await harness.post("/v1/usage/batch", { entries: [] }), "entries");
    const entries = Array.from({ length: 10_001 }, (_, index) => row(account, `k${index}`));
    expectInvalid(await harness.post("/v1/usage/batch", { entries }), "entries");
    expect(await entryCount(account)).toBe(0);
  });

  it("a key reused with a different body is 409 and none of the other rows is written", async () => {
    const account = await harness.createAccount();
    expect((await harness.post("/v1/usage", row(account, "k0", "1"))).status).toBe(201);
    const response = await harness.post("/v1/usage/batch", { entries: [row(account, "k1"), row(account, "k0", "2"), row(account, "k2")] });
    expectProblem(response, 409, "idempotency_key_reused");
    expect(response.body.index).toBe(1);
    expect(await entryCount(account)).toBe(1);
    expect(await balance(account)).toBe("-1");
  });

  it("rows already present with the same body count as replayed", async () => {
    const account = await harness.createAccount();
    expect((await harness.post("/v1/usage", row(account, "single", "1.5"))).status).toBe(201);
    expect((await harness.post("/v1/usage/batch", { entries: [row(account, "k1"), row(account, "k2"), row(account, "k3")] })).body).toEqual({ inserted: 3, replayed: 0 });
    const keys = ["k1", "k2", "k3", "k4", "k5"];
    const again = await harness.post("/v1/usage/batch", { entries: [...keys.map((key) => row(account, key)), row(account, "single", "1.50")] });
    expect(again.status).toBe(200);
    expect(again.body).toEqual({ inserted: 2, replayed: 4 });
    expect((await harness.post("/v1/usage/batch", { entries: [row(account, "k6"), row(account, "k6")] })).body).toEqual({ inserted: 1, replayed: 1 });
    expect(await entryCount(account)).toBe(7);
    expect(await balance(account)).toBe("-7.5");
  });

  it("the same key twice in one batch with different bodies is 409 and writes nothing", async () => {
    const account = await harness.createAccount();
    const response = await harness.post("/v1/usage/batch", { entries: [row(account, "a"), row(account, "dup", "1"), row(account, "dup", "2")] });
    expectProblem(response, 409, "idempotency_key_reused");
    expect(await entryCount(account)).toBe(0);
  });
});

describe("idempotency of single posts", () => {
  it("a replay is 200 with Idempotent-Replayed: true and the same entry; 1.5 and 1.50 are the same request", async () => {
    const account = await harness.createAccount();
    const body = { ...validBody("/v1/usage", account, "same"), amount: "1.5", metadata: { a: 1, b: [2] } };
    const first = await harness.post("/v1/usage", body);
    expect(first.status).toBe(201);
    expect(first.headers.get("Idempotent-Replayed")).toBeNull();
    for (const again of [body, { ...body, amount: "1.50" }, { ...body, amount: "1.500000000", metadata: { b: [2], a: 1 } }]) {
      const replay = await harness.post("/v1/usage", again);
      expect(replay.status).toBe(200);
      expect(replay.headers.get("Idempotent-Replayed")).toBe("true");
      expect(replay.body).toEqual(first.body);
    }
    expect(await entryCount(account)).toBe(1);
    expect(await balance(account)).toBe("-1.5");
  });

  it.each([
    ["amount", "/v1/usage", "/v1/usage", { amount: "2" }],
    ["description", "/v1/usage", "/v1/usage", { description: "other" }],
    ["metadata", "/v1/usage", "/v1/usage", { metadata: { a: 2 } }],
    ["batch_id", "/v1/usage", "/v1/usage", { batch_id: randomUUID() }],
    ["credit type", "/v1/credits", "/v1/credits", { type: "grant" }],
    ["entry type (usage, then a credit)", "/v1/usage", "/v1/credits", {}],
    ["entry type (credit, then a debit)", "/v1/credits", "/v1/debits", {}],
  ])("the same key with a different %s is 409 idempotency_key_reused", async (_, first, second, change) => {
    const account = await harness.createAccount();
    expect((await harness.post(first, validBody(first, account, "key"))).status).toBe(201);
    expectProblem(await harness.post(second, { ...validBody(second, account, "key"), ...change }), 409, "idempotency_key_reused");
    expect(await entryCount(account)).toBe(1);
  });

  it("the same key on another account is a different entry", async () => {
    const [one, two] = [await harness.createAccount(), await harness.createAccount()];
    const first = await harness.post("/v1/usage", validBody("/v1/usage", one, "shared"));
    const second = await harness.post("/v1/usage", validBody("/v1/usage", two, "shared"));
    expect([first.status, second.status]).toEqual([201, 201]);
    expect(second.body.id).not.toBe(first.body.id);
    expect([await entryCount(one), await entryCount(two)]).toEqual([1, 1]);
  });

  it("a strict debit replays even when the balance no longer covers it", async () => {
    const account = await harness.createAccount();
    await harness.post("/v1/credits", { ...validBody("/v1/credits", account), amount: "3" });
    const debit = { account_id: account, amount: "3", idempotency_key: "d" };
    const first = await harness.post("/v1/debits", debit);
    expect(first.status).toBe(201);
    const replay = await harness.post("/v1/debits", debit);
    expect([replay.status, replay.body.id, replay.headers.get("Idempotent-Replayed")]).toEqual([200, first.body.id, "true"]);
    expectProblem(await harness.post("/v1/debits", { ...debit, idempotency_key: "d2" }), 409, "insufficient_balance");
    expect([await entryCount(account), await balance(account)]).toEqual([2, "0"]);
  });
});

describe("query parameters", () => {
  it.each([["limit=0", "limit"], ["limit=501", "limit"], ["limit=abc", "limit"], ["limit=1.5", "limit"], ["foo=1", "foo"], [`cursor=${"c".repeat(513)}`, "cursor"]])(
    "GET /v1/accounts?%s is 400 naming %s",
    async (query, field) => {
      expectInvalid(await harness.get(`/v1/accounts?${query}`), field);
    },
  );

  it.each([
    ["garbage", async () => "garbage"],
    ["e30", async () => "e30"],
    ["a signed but invalid account id", () => encodeCursor(harness.signer, ACCOUNTS_CURSOR_BINDING, { after_id: "a b" })],
    ["a signed cursor with an extra field", () => encodeCursor(harness.signer, ACCOUNTS_CURSOR_BINDING, { after_id: "x", extra: 1 })],
    ["an unsigned cursor", async () => Buffer.from(JSON.stringify({ after_id: "x" })).toString("base64url")],
    ["%00", async () => "%00"],
  ])("cursor: %s is 400 invalid_cursor", async (_label, cursor) => {
    expectProblem(await harness.get(`/v1/accounts?cursor=${encodeURIComponent(await cursor())}`), 400, "invalid_cursor");
  });

  it("pages through accounts in id order, each once", async () => {
    const prefix = uniqueId("page");
    const mine = Array.from({ length: 7 }, (_, index) => `${prefix}-${index}`);
    for (const id of [...mine].reverse()) await harness.createAccount(id);

    // Every account, in pages of 500: no id twice, and ours in order.
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page: ApiResponse = await harness.get(`/v1/accounts?limit=500${cursor ? `&cursor=${cursor}` : ""}`);
      expect(page.status).toBe(200);
      seen.push(...page.body.accounts.map((account: { id: string }) => account.id));
      cursor = page.body.next_cursor;
    } while (cursor);
    expect(new Set(seen).size).toBe(seen.length);
    expect(seen.filter((id) => id.startsWith(`${prefix}-`))).toEqual(mine);

    // Small pages across our accounts. The listing has no "start at" parameter, so the first cursor is built the
    // way the service builds one (a cursor after the shared prefix, which sorts just before our ids).
    const walked: string[] = [];
    cursor = await encodeCursor(harness.signer, ACCOUNTS_CURSOR_BINDING, { after_id: prefix });
    for (let pageIndex = 0; pageIndex < 4; pageIndex++) {
      const page: ApiResponse = await harness.get(`/v1/accounts?limit=2&cursor=${cursor}`);
      expect(page.status).toBe(200);
      expect(page.body.accounts[0]).toMatchObject({ metadata: {}, balance: "0" });
      walked.push(...page.body.accounts.map((account: { id: string }) => account.id));
      if (pageIndex < 3) {
        expect(page.body.accounts.length).toBe(2);
        expect(page.body.next_cursor).toEqual(expect.any(String));
      }
      cursor = page.body.next_cursor;
    }
    expect(walked.slice(0, mine.length)).toEqual(mine);
  });
});

describe("unknown routes and the aftermath", () => {
  it.each([["GET", "/nope"], ["GET", "/v1/nope"], ["POST", "/v1/balances"], ["DELETE", "/v1/accounts"]])("%s %s is 404 not_found", async (method, path) => {
    expectProblem(await harness.request(method, path, {}), 404, "not_found");
  });

  it("the service keeps serving after all of the above", async () => {
    const account = await harness.createAccount();
    expect((await harness.post("/v1/usage", validBody("/v1/usage", account))).status).toBe(201);
    expect((await harness.get("/ready", null)).status).toBe(200);
    expect(await balance(account)).toBe("-1");
  });
});
