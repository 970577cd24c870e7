import { randomBytes } from "node:crypto";
import { afterAll, describe, expect, it } from "vitest";
import { createApp } from "../../src/app.js";
import { FailedAuthentications } from "../../src/auth/failed-authentications.js";
import { ServiceKeyVerifier } from "../../src/auth/service-keys.js";
import { createLogger } from "../../src/logger.js";
import { ADMIN_KEY, createHarness, uniqueId } from "../support/harness.js";

const harness = createHarness();
afterAll(() => harness.close());

const account = harness.createAccount();
const randomKey = () => `tk_${randomBytes(8).toString("hex")}${randomBytes(32).toString("hex")}`;

function appWith(verifier: ServiceKeyVerifier, failures?: FailedAuthentications) {
  const logger = createLogger("silent");
  const app = createApp({
    database: harness.database,
    ledger: harness.ledger,
    logger,
    authenticators: { service_keys: verifier, jwt: undefined, admin_key: ADMIN_KEY, failed_authentications: failures },
    limits: { max_body_bytes: 1 << 20, request_timeout_ms: 30_000, cors_origins: [] },
  });
  return async (token: string, address?: string) =>
    app.request(
      `/v1/balances/${await account}`,
      { headers: { authorization: `Bearer ${token}` } },
      address === undefined ? undefined : { incoming: { socket: { remoteAddress: address } } },
    );
}

describe("random service keys", () => {
  it("do not each cost a database read: 500 unknown tokens read the key table a handful of times", async () => {
    const verifier = new ServiceKeyVerifier(harness.database);
    const call = appWith(verifier);
    const statuses = await Promise.all(Array.from({ length: 500 }, () => call(randomKey()).then((response) => response.status)));
    expect(new Set(statuses)).toEqual(new Set([401]));
    // One read of the active ids for the burst (plus at most a few as requests straddle a read), never one each.
    expect(verifier.lookups_total).toBeLessThanOrEqual(5);
  });

  it("a key created after the id set was read works on its first use", async () => {
    const verifier = new ServiceKeyVerifier(harness.database);
    const call = appWith(verifier);
    expect((await call(randomKey())).status).toBe(401);
    const key = await harness.serviceKey(["balances:read"]);
    expect((await call(key)).status).toBe(200);
    expect((await call(key.slice(0, -1) + (key.endsWith("0") ? "1" : "0"))).status).toBe(401);
  });
});

describe("failed authentications per client address", () => {
  it("past the bound answer 429 with Retry-After for unknown credentials, not for known ones or other addresses", async () => {
    let now = 1_000_000;
    const failures = new FailedAuthentications({ failures_max: 5, window_ms: 60_000, addresses_max: 100 }, () => now);
    const verifier = new ServiceKeyVerifier(harness.database);
    const call = appWith(verifier, failures);
    const attacker = "203.0.113.7";
    const key = await harness.serviceKey(["balances:read"]);
    expect((await call(key, attacker)).status).toBe(200);
    for (let attempt = 0; attempt < 5; attempt++) expect((await call(randomKey(), attacker)).status).toBe(401);

    const throttled = await call(randomKey(), attacker);
    expect(throttled.status).toBe(429);
    expect(throttled.headers.get("retry-after")).toBe("60");
    expect(await throttled.json()).toMatchObject({ code: "too_many_failed_authentications" });
    const lookups = verifier.lookups_total;
    for (let attempt = 0; attempt < 50; attempt++) expect((await call(randomKey(), attacker)).status).toBe(429);
    expect(verifier.lookups_total).toBe(lookups);

    // What this process already knows still works from that address; other addresses are untouched.
    expect((await call(ADMIN_KEY, attacker)).status).toBe(200);
    expect((await call(key, attacker)).status).toBe(200);
    expect((await call(randomKey(), "198.51.100.1")).status).toBe(401);

    now += 60_000;
    expect((await call(randomKey(), attacker)).status).toBe(401);
  });

  it("forgets the oldest address past its bound", () => {
    const failures = new FailedAuthentications({ failures_max: 1, window_ms: 60_000, addresses_max: 2 }, () => 0);
    for (const address of ["a", "b", "c"]) failures.record(address);
    expect(failures.throttledFor("a")).toBe(0);
    expect(failures.throttledFor("c")).toBe(60);
    expect(uniqueId()).not.toBe("");
  });
});
