import { randomBytes } from "node:crypto";
import { SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SCOPES, type Scope } from "../../src/auth/scopes.js";
import { revokeServiceKey } from "../../src/auth/service-keys.js";
import { ADMIN_KEY, JWT_AUDIENCE, JWT_SECRET, createHarness, uniqueId, type ApiResponse } from "../support/harness.js";

const harness = createHarness();
afterAll(() => harness.close());

async function entryCount(account: string): Promise<number> {
  const [row] = await harness.database.query<{ n: number }>("SELECT count(*)::int AS n FROM entries WHERE account_id = $1", [account]);
  return row!.n;
}
async function accountExists(id: string): Promise<boolean> {
  const [row] = await harness.database.query<{ n: number }>("SELECT count(*)::int AS n FROM accounts WHERE id = $1", [id]);
  return row!.n === 1;
}
function expectProblem(response: ApiResponse, status: number, code: string) {
  expect(response.status, JSON.stringify(response.body)).toBe(status);
  expect(response.headers.get("content-type")).toMatch(/^application\/problem\+json/);
  expect(response.body).toMatchObject({ status, code });
}
const keyId = (key: string) => key.slice(3, 19);
const base64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");
const now = () => Math.floor(Date.now() / 1000);

/** An end-user token; each option breaks one thing. */
async function userToken(
  sub: string | undefined,
  options: { audience?: string | null; exp?: number | null; secret?: string; alg?: string; nbf?: number } = {},
): Promise<string> {
  const jwt = new SignJWT({}).setProtectedHeader({ alg: options.alg ?? "HS256" }).setIssuedAt();
  if (sub !== undefined) jwt.setSubject(sub);
  if (options.audience !== null) jwt.setAudience(options.audience ?? JWT_AUDIENCE);
  if (options.exp !== null) jwt.setExpirationTime(options.exp ?? now() + 300);
  if (options.nbf !== undefined) jwt.setNotBefore(options.nbf);
  return jwt.sign(new TextEncoder().encode(options.secret ?? JWT_SECRET));
}

interface Route {
  scope: Scope;
  method: string;
  path: (account: string) => string;
  body?: (account: string) => unknown;
  ok: number;
}
const posting = (account: string) => ({ account_id: account, amount: "1", idempotency_key: uniqueId("key") });
const ROUTES: Route[] = [
  { scope: "usage:write", method: "POST", path: () => "/v1/usage", body: posting, ok: 201 },
  { scope: "usage:write", method: "POST", path: () => "/v1/usage/batch", body: (a) => ({ entries: [posting(a)] }), ok: 200 },
  { scope: "credits:write", method: "POST", path: () => "/v1/credits", body: (a) => ({ ...posting(a), type: "grant" }), ok: 201 },
  { scope: "debits:write", method: "POST", path: () => "/v1/debits", body: (a) => ({ ...posting(a), allow_overdraft: true }), ok: 201 },
  { scope: "balances:read", method: "GET", path: (a) => `/v1/balances/${a}`, ok: 200 },
  { scope: "balances:read", method: "POST", path: () => "/v1/balances/query", body: (a) => ({ account_ids: [a] }), ok: 200 },
  { scope: "balances:read", method: "POST", path: () => "/v1/balances/check", body: (a) => ({ account_id: a, amount: "1" }), ok: 200 },
  { scope: "balances:read", method: "GET", path: (a) => `/v1/accounts/${a}`, ok: 200 },
  { scope: "balances:read", method: "GET", path: () => "/v1/accounts?limit=1", ok: 200 },
  { scope: "accounts:write", method: "POST", path: () => "/v1/accounts", body: () => ({ id: uniqueId() }), ok: 201 },
];
const call = (route: Route, account: string, token: string | null, body = route.body?.(account)) =>
  harness.request(route.method, route.path(account), { body, token });

describe("401 unauthorized", () => {
  let account: string;
  let realKey: string;
  beforeAll(async () => {
    account = await harness.createAccount();
    realKey = await harness.serviceKey(["usage:write", "balances:read"]);
  });
  afterAll(async () => {
    expect(await entryCount(account)).toBe(0);
  });

  async function expectUnauthorized(token: string | null, headers: Record<string, string> = {}) {
    for (const route of [ROUTES[0]!, ROUTES[4]!, ROUTES[8]!]) {
      const response = await harness.request(route.method, route.path(account), { body: route.body?.(account), token, headers });
      expectProblem(response, 401, "unauthorized");
    }
  }

  it("without an Authorization header", async () => {
    await expectUnauthorized(null);
  });

  it.each([
    `Basic ${Buffer.from("admin:secret").toString("base64")}`,
    "Bearer",
    "Bearer ",
    `Bearer  ${ADMIN_KEY}`,
    `Bearer ${ADMIN_KEY} extra`,
    `Token ${ADMIN_KEY}`,
    ADMIN_KEY,
    `Bearer ${"x".repeat(5000)}`,
  ])("with the malformed header %j", async (header) => {
    await expectUnauthorized(null, { authorization: header });
  });

  it.each([
    ["an admin key one character off", `${ADMIN_KEY.slice(0, -1)}X`],
    ["an unknown tk_ key", `tk_${randomBytes(40).toString("hex")}`],
    ["a tk_ key of the wrong shape", "tk_short"],
    ["a tk_ key in upper case", `tk_${randomBytes(40).toString("hex").toUpperCase()}`],
  ])("with %s", async (_, token) => {
    await expectUnauthorized(token);
  });

  it("with a wrong secret for a real key id (the real key works)", async () => {
    const last = realKey.at(-1) === "0" ? "1" : "0";
    await expectUnauthorized(`${realKey.slice(0, -1)}${last}`);
    await expectUnauthorized(`tk_${keyId(realKey)}${randomBytes(32).toString("hex")}`);
    expect((await harness.get(`/v1/balances/${account}`, realKey)).status).toBe(200);
  });

  it("with a key revoked before its first use", async () => {
    // Verified keys are cached in process for KEY_CACHE_TTL_MS (5 s), so a key is revoked here before this process
    // ever looked it up: the first lookup then reads the revoked row.
    const key = await harness.serviceKey(["usage:write", "balances:read"]);
    expect(await revokeServiceKey(harness.database.orm, keyId(key))).toBe(true);
    expect(await revokeServiceKey(harness.database.orm, keyId(key))).toBe(false);
    await expectUnauthorized(key);
  });

  it("with a key revoked after use, as seen by a fresh process", async () => {
    // This harness has the key cached as valid for up to 5 s, so the revocation is checked through a second
    // harness (its own ServiceKeyVerifier and cache), as another process or this one after the TTL would see it.
    const key = await harness.serviceKey(["balances:read"]);
    expect((await harness.get(`/v1/balances/${account}`, key)).status).toBe(200);
    await revokeServiceKey(harness.database.orm, keyId(key));
    const fresh = createHarness({ pool_max: 2 });
    try {
      expectProblem(await fresh.get(`/v1/balances/${account}`, key), 401, "unauthorized");
      expect((await fresh.get(`/v1/balances/${account}`)).status).toBe(200);
    } finally {
      await fresh.close();
    }
  });
});

describe("scopes", () => {
  describe.each(ROUTES.map((route) => [`${route.method} ${route.path("{id}")}`, route] as const))("%s", (_, route) => {
    it(`is 403 for a key with every scope but ${route.scope}, and writes nothing`, async () => {
      const account = await harness.createAccount();
      const key = await harness.serviceKey(SCOPES.filter((scope) => scope !== route.scope && scope !== "admin"));
      const body = route.body?.(account);
      expectProblem(await call(route, account, key, body), 403, "forbidden");
      expectProblem(await call(route, account, await harness.serviceKey([]), body), 403, "forbidden");
      expect(await entryCount(account)).toBe(0);
      if (route.scope === "accounts:write") expect(await accountExists((body as { id: string }).id)).toBe(false);
    });

    it(`succeeds with exactly ${route.scope}, and with admin`, async () => {
      const account = await harness.createAccount();
      for (const key of [await harness.serviceKey([route.scope]), await harness.serviceKey(["admin"])]) {
        const response = await call(route, account, key);
        expect(response.status, JSON.stringify(response.body)).toBe(route.ok);
      }
      if (route.scope.endsWith(":write") && route.scope !== "accounts:write") expect(await entryCount(account)).toBe(2);
    });
  });
});

describe("end-user tokens", () => {
  let own: string;
  let other: string;
  let token: string;
  beforeAll(async () => {
    [own, other] = [await harness.createAccount(), await harness.createAccount()];
    await harness.post("/v1/credits", { account_id: own, type: "purchase", amount: "5", idempotency_key: "seed" });
    await harness.post("/v1/credits", { account_id: other, type: "purchase", amount: "7", idempotency_key: "seed" });
    token = await userToken(own);
  });

  it("read their own balance and account", async () => {
    expect(await harness.get("/v1/me", token)).toMatchObject({ status: 200, body: { account_id: own, balance: "5" } });
    expect(await harness.get(`/v1/balances/${own}`, token)).toMatchObject({ status: 200, body: { account_id: own, balance: "5" } });
    expect(await harness.get(`/v1/accounts/${own}`, token)).toMatchObject({ status: 200, body: { id: own, balance: "5" } });
    expect(await harness.post("/v1/balances/query", { account_ids: [own] }, token)).toMatchObject({ status: 200, body: { balances: [{ account_id: own, balance: "5" }] } });
    expect(await harness.post("/v1/balances/check", { account_id: own, amount: "6" }, token)).toMatchObject({ status: 200, body: { sufficient: false, deficit: "1" } });
  });

  it("POST /v1/me creates their own account: 201, then 200 unchanged", async () => {
    const id = uniqueId("user");
    const mine = await userToken(id);
    expectProblem(await harness.get("/v1/me", mine), 404, "account_not_found");
    const created = await harness.request("POST", "/v1/me", { token: mine });
    expect(created).toMatchObject({ status: 201, body: { id, metadata: {} } });
    const again = await harness.post("/v1/me", { metadata: { plan: "pro" } }, mine);
    expect(again).toMatchObject({ status: 200, body: { id, metadata: {}, created_at: created.body.created_at } });
    expect(await harness.get("/v1/me", mine)).toMatchObject({ status: 200, body: { account_id: id, balance: "0" } });
    expect(await accountExists(id)).toBe(true);
  });

  it("cannot name another account when creating their own", async () => {
    const id = uniqueId("user");
    const response = await harness.post("/v1/me", { id: other }, await userToken(id));
    expectProblem(response, 400, "validation_failed");
    expect(response.body.errors).toContainEqual({ field: "id", message: "is not a known field" });
    expect(await accountExists(id)).toBe(false);
  });

  it("are refused another account's data with 403", async () => {
    expectProblem(await harness.get(`/v1/balances/${other}`, token), 403, "forbidden");
    expectProblem(await harness.get(`/v1/accounts/${other}`, token), 403, "forbidden");
    expectProblem(await harness.post("/v1/balances/check", { account_id: other, amount: "1" }, token), 403, "forbidden");
    const bulk = await harness.post("/v1/balances/query", { account_ids: [own, other] }, token);
    expectProblem(bulk, 403, "forbidden");
    expect(JSON.stringify(bulk.body)).not.toContain('"7"');
    expectProblem(await harness.get("/v1/accounts", token), 403, "forbidden");
  });

  it("cannot write, not even to their own account", async () => {
    const fresh = uniqueId();
    for (const route of ROUTES.filter((candidate) => candidate.scope.endsWith(":write"))) {
      expectProblem(await call(route, own, token, route.scope === "accounts:write" ? { id: fresh } : undefined), 403, "forbidden");
    }
    expect(await entryCount(own)).toBe(1);
    expect(await accountExists(fresh)).toBe(false);
    expect((await harness.get(`/v1/balances/${own}`)).body.balance).toBe("5");
  });

  it.each<[string, () => Promise<string>]>([
    ["alg none", async () => `${base64url({ alg: "none", typ: "JWT" })}.${base64url({ sub: ownId(), aud: JWT_AUDIENCE, exp: now() + 300 })}.`],
    ["an expired token", () => userToken(ownId(), { exp: now() - 60 })],
    ["a token not yet valid", () => userToken(ownId(), { nbf: now() + 3600 })],
    ["the wrong audience", () => userToken(ownId(), { audience: "someone-else" })],
    ["no audience", () => userToken(ownId(), { audience: null })],
    ["a signature by another secret", () => userToken(ownId(), { secret: `${JWT_SECRET}-other` })],
    ["HS512 with the right secret", () => userToken(ownId(), { alg: "HS512" })],
    ["a payload altered after signing", async () => {
      const [header, , signature] = (await userToken(ownId())).split(".");
      return `${header}.${base64url({ sub: otherId(), aud: JWT_AUDIENCE, exp: now() + 300 })}.${signature}`;
    }],
    ["no exp", () => userToken(ownId(), { exp: null })],
    ["no sub", () => userToken(undefined)],
    ["a sub with a space", () => userToken("a b")],
    ["a sub with a slash", () => userToken("a/b")],
    ["a sub of 129 characters", () => userToken("a".repeat(129))],
    ["an empty sub", () => userToken("")],
  ])("are 401 with %s", async (_, make) => {
    const bad = await make();
    expectProblem(await harness.get("/v1/me", bad), 401, "unauthorized");
    expectProblem(await harness.get(`/v1/balances/${own}`, bad), 401, "unauthorized");
    expectProblem(await harness.request("POST", "/v1/me", { token: bad }), 401, "unauthorized");
    expect((await harness.get("/v1/me", token)).status).toBe(200);
  });

  it("/v1/me is 403 for service keys, which have no account", async () => {
    for (const key of [ADMIN_KEY, await harness.serviceKey(["balances:read"]), await harness.serviceKey(["admin"])]) {
      expectProblem(await harness.get("/v1/me", key), 403, "forbidden");
      expectProblem(await harness.request("POST", "/v1/me", { token: key }), 403, "forbidden");
    }
  });

  const ownId = () => own;
  const otherId = () => other;
});
