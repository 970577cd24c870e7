import { SignJWT } from "jose";
import { afterAll, describe, expect, it } from "vitest";
import { ServiceKeyVerifier } from "../../src/auth/service-keys.js";
import { createHarness, JWT_AUDIENCE, JWT_SECRET, uniqueId } from "../support/harness.js";

const harness = createHarness();
afterAll(() => harness.close());

async function userToken(account_id: string): Promise<string> {
  return new SignJWT({})
    .setProtectedHeader({ alg: "HS256" })
    .setSubject(account_id)
    .setAudience(JWT_AUDIENCE)
    .setExpirationTime("5m")
    .sign(new TextEncoder().encode(JWT_SECRET));
}

describe("keys over the API", () => {
  it("creates a key whose secret is shown once and works at once, lists it without the secret, revokes it", async () => {
    const name = uniqueId("proxy");
    const created = await harness.post("/v1/keys", { name, scopes: ["usage:write", "balances:read", "usage:write"] });
    expect(created.status).toBe(201);
    expect(created.headers.get("cache-control")).toBe("no-store");
    expect(created.body).toMatchObject({ name, scopes: ["usage:write", "balances:read"], expires_at: null, revoked_at: null });
    expect(created.body.key).toMatch(new RegExp(`^tk_${created.body.id}[0-9a-f]{64}$`));

    const account = await harness.createAccount();
    expect((await harness.get(`/v1/balances/${account}`, created.body.key)).status).toBe(200);
    expect((await harness.post("/v1/credits", { account_id: account, type: "grant", amount: "1", idempotency_key: "g" }, created.body.key)).status).toBe(403);

    const listed = await harness.get("/v1/keys");
    expect(listed.status).toBe(200);
    const item = listed.body.items.find((key: { id: string }) => key.id === created.body.id);
    expect(item).toEqual({ id: created.body.id, name, scopes: ["usage:write", "balances:read"], created_at: created.body.created_at, expires_at: null, revoked_at: null });
    expect(JSON.stringify(listed.body)).not.toContain(created.body.key.slice(19));

    const revoked = await harness.request("DELETE", `/v1/keys/${created.body.id}`);
    expect(revoked.status).toBe(204);
    expect((await harness.request("DELETE", `/v1/keys/${created.body.id}`)).body.code).toBe("not_found");
    // A fresh verifier (no 5 s cache) refuses it now.
    expect(await new ServiceKeyVerifier(harness.database.orm).verify(created.body.key)).toBeUndefined();
  });

  it("refuses a key past its expiry, and an expiry in the past at creation", async () => {
    const expires_at = new Date(Date.now() + 60_000).toISOString();
    const created = await harness.post("/v1/keys", { name: uniqueId("temp"), scopes: ["balances:read"], expires_at });
    expect(created.status).toBe(201);
    expect(created.body.expires_at).toBe(expires_at);
    let now = Date.now();
    const verifier = new ServiceKeyVerifier(harness.database.orm, () => now);
    expect(await verifier.verify(created.body.key)).toBeDefined();
    now += 61_000;
    expect(await verifier.verify(created.body.key)).toBeUndefined();

    const past = await harness.post("/v1/keys", { name: "x", scopes: ["balances:read"], expires_at: "2020-01-01T00:00:00Z" });
    expect(past.status).toBe(400);
    expect(past.body.errors).toEqual([{ field: "expires_at", message: "must be in the future" }]);
  });

  it("refuses bad input and changes nothing", async () => {
    const before = (await harness.get("/v1/keys")).body.items.length;
    for (const body of [
      { name: "", scopes: ["admin"] },
      { name: "x", scopes: [] },
      { name: "x", scopes: ["root"] },
      { name: "x".repeat(201), scopes: ["admin"] },
      { name: "x", scopes: ["admin"], extra: 1 },
      { name: "x", scopes: ["admin"], expires_at: "tomorrow" },
    ]) {
      const response = await harness.post("/v1/keys", body);
      expect(response.status, JSON.stringify(body)).toBe(400);
      expect(response.body.code).toBe("validation_failed");
    }
    expect((await harness.request("DELETE", "/v1/keys/not-a-key")).status).toBe(400);
    expect((await harness.get("/v1/keys")).body.items.length).toBe(before);
  });

  it("needs the admin scope: other keys and end users get 403, no credential 401", async () => {
    const strong = await harness.serviceKey(["usage:write", "credits:write", "debits:write", "balances:read", "history:read", "accounts:write", "events:read", "metrics:read"]);
    const user = await userToken(await harness.createAccount());
    for (const token of [strong, user]) {
      expect((await harness.post("/v1/keys", { name: "x", scopes: ["admin"] }, token)).status).toBe(403);
      expect((await harness.get("/v1/keys", token)).status).toBe(403);
      expect((await harness.request("DELETE", "/v1/keys/0123456789abcdef", { token })).status).toBe(403);
    }
    expect((await harness.get("/v1/keys", null)).status).toBe(401);
    const admin = await harness.serviceKey(["admin"]);
    expect((await harness.get("/v1/keys", admin)).status).toBe(200);
  });
});
