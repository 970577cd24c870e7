import { afterAll, describe, expect, it } from "vitest";
import { createApp } from "../../src/app.js";
import { ServiceKeyVerifier } from "../../src/auth/service-keys.js";
import { createLogger } from "../../src/logger.js";
import { ADMIN_KEY, createHarness } from "../support/harness.js";

const harness = createHarness();
afterAll(() => harness.close());

describe("while the process drains", () => {
  it("/ready answers 503 with Retry-After at once, and new event streams are refused", async () => {
    const lifecycle = { draining: false };
    const logger = createLogger("silent");
    const app = createApp({
      database: harness.database,
      ledger: harness.ledger,
      logger,
      lifecycle,
      authenticators: { service_keys: new ServiceKeyVerifier(harness.database), jwt: undefined, admin_key: ADMIN_KEY },
      limits: { max_body_bytes: 1 << 20, request_timeout_ms: 30_000, cors_origins: [] },
    });
    expect((await app.request("/ready")).status).toBe(200);
    lifecycle.draining = true;
    const ready = await app.request("/ready");
    expect(ready.status).toBe(503);
    expect(ready.headers.get("retry-after")).toBe("1");
    expect(await ready.json()).toMatchObject({ code: "service_unavailable" });

    harness.ledger.events.hub.shutdown();
    const stream = await app.request("/v1/events", { headers: { authorization: `Bearer ${ADMIN_KEY}` } });
    expect(stream.status).toBe(503);
    expect(stream.headers.get("retry-after")).toBe("1");
  });
});
