/**
 * The request line carries the W3C traceparent's trace id (issue 16), through the app's real middleware stack:
 * test/unit/traceparent.test.ts covers the parsing, this covers that createApp logs it.
 */
import { Writable } from "node:stream";
import pino from "pino";
import { afterAll, describe, expect, it } from "vitest";
import { createApp } from "../../src/app.js";
import { ServiceKeyVerifier } from "../../src/auth/service-keys.js";
import { ADMIN_KEY, createHarness } from "../support/harness.js";

const harness = createHarness();
afterAll(() => harness.close());

describe("request log", () => {
  it("logs the trace id of a traceparent header with the request line, and no header", async () => {
    const lines: Record<string, unknown>[] = [];
    const sink = new Writable({
      write(chunk, _encoding, done) {
        lines.push(JSON.parse(String(chunk)) as Record<string, unknown>);
        done();
      },
    });
    const logger = pino({ level: "info" }, sink);
    const app = createApp({
      database: harness.database,
      ledger: harness.ledger,
      logger,
      signer: harness.signer,
      authenticators: { service_keys: new ServiceKeyVerifier(harness.database.orm), jwt: undefined, admin_key: ADMIN_KEY },
      limits: { max_body_bytes: 1024, request_timeout_ms: 10_000, cors_origins: [] },
    });
    const trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    const response = await app.request("/v1/accounts?limit=1", {
      headers: { authorization: `Bearer ${ADMIN_KEY}`, traceparent: `00-${trace}-00f067aa0ba902b7-01` },
    });
    expect(response.status).toBe(200);
    await app.request("/v1/accounts?limit=1", { headers: { authorization: `Bearer ${ADMIN_KEY}`, traceparent: "garbage" } });
    const requests = lines.filter((line) => line.msg === "request");
    expect(requests).toHaveLength(2);
    expect(requests[0]).toMatchObject({ trace_id: trace, method: "GET", path: "/v1/accounts", status: 200, caller: "key:admin" });
    expect(requests[1]!.trace_id).toBeUndefined();
    expect(JSON.stringify(lines)).not.toContain(ADMIN_KEY);
  });
});
