/**
 * The console on the embedded store (PGlite), which the README's first command uses: sign-in, the account list's
 * one statement (holds, lot folds, JSON aggregates, snapshot functions), the account page, a credit through the
 * confirmation step sent twice, and the live event stream, all on PGlite's single connection.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EMBEDDED_ADMIN_KEY, embeddedApp, openEmbeddedStore, type EmbeddedResponse } from "../support/embedded-app.js";

let store: Awaited<ReturnType<typeof openEmbeddedStore>>;
let embedded: ReturnType<typeof embeddedApp>;
let cookie: string;
const ORIGIN = "http://localhost";

beforeAll(async () => {
  store = await openEmbeddedStore("tally-console-embedded");
  embedded = embeddedApp(store.database);
});

afterAll(async () => {
  await store?.close();
});

async function ok(response: Promise<EmbeddedResponse>, status = 201) {
  const answer = await response;
  expect(answer.status, JSON.stringify(answer.body)).toBe(status);
  return answer.body;
}

function page(path: string, init: { method?: string; form?: Record<string, string> } = {}) {
  return embedded.app.request(path, {
    method: init.method ?? "GET",
    headers: { cookie, origin: ORIGIN, ...(init.form ? { "content-type": "application/x-www-form-urlencoded" } : {}) },
    body: init.form ? new URLSearchParams(init.form) : undefined,
    redirect: "manual",
  });
}

function field(html: string, name: string): string {
  const match = new RegExp(`name="${name}" value="([^"]*)"`).exec(html);
  if (!match) throw new Error(`no ${name} field in the page`);
  return match[1]!;
}

describe("console on the embedded store", () => {
  it("signs in, lists accounts with available, held and expiring credit, and posts a credit once", async () => {
    const signIn = await embedded.app.request("/console/sign-in", {
      method: "POST",
      headers: { origin: ORIGIN, "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ credential: EMBEDDED_ADMIN_KEY }),
    });
    expect(signIn.status).toBe(303);
    cookie = signIn.headers.get("set-cookie")!.split(";")[0]!;

    const id = "org_console_embedded";
    await ok(embedded.call("POST", "/v1/accounts", { id }));
    const expires_at = new Date(Date.now() + 7 * 86_400_000).toISOString();
    await ok(embedded.call("POST", "/v1/credits", { account_id: id, type: "grant", amount: "10", idempotency_key: "g", expires_at }));
    await ok(embedded.call("POST", "/v1/usage", { account_id: id, amount: "1.25", idempotency_key: "u" }));
    await ok(embedded.call("POST", "/v1/holds", { account_id: id, amount: "2", idempotency_key: "h" }));
    const api = await ok(embedded.call("GET", `/v1/balances/${id}`), 200);
    expect(api).toMatchObject({ balance: "8.75", available: "6.75", expiring_next: { expires_at, amount: "8.75" } });

    const list = await page("/console/accounts?prefix=org_console");
    expect(list.status).toBe(200);
    const html = await list.text();
    expect(html).toMatch(/data-available="true"><span>6\.75<\/span>/);
    expect(html).toMatch(/data-held="true">2</);
    expect(html).toContain(`8.75 on <time datetime="${expires_at}">`);

    const account = await (await page(`/console/accounts/${id}`)).text();
    expect(account).toMatch(/data-testid="available"><span>6\.75</);
    expect(account).toContain("data-hold-id=");

    const form = await (await page(`/console/accounts/${id}/credit`)).text();
    const values = { csrf: field(form, "csrf"), idempotency_key: field(form, "idempotency_key"), type: "bonus", amount: "5", description: "embedded" };
    expect((await page(`/console/accounts/${id}/credit/confirm`, { method: "POST", form: values })).status).toBe(200);
    const sent = await Promise.all([1, 2].map(() => page(`/console/accounts/${id}/credit`, { method: "POST", form: values })));
    expect(sent.map((response) => response.status)).toEqual([303, 303]);
    const balance = await ok(embedded.call("GET", `/v1/balances/${id}`), 200);
    expect(balance.balance).toBe("13.75");
  });

  it("streams depletion to the console session", async () => {
    const id = "org_console_live";
    await ok(embedded.call("POST", "/v1/accounts", { id }));
    const stream = await page("/console/events/stream?after=0");
    expect(stream.status).toBe(200);
    expect(stream.headers.get("content-type")).toContain("text/event-stream");
    await ok(embedded.call("POST", "/v1/credits", { account_id: id, type: "grant", amount: "1", idempotency_key: "live-g" }));
    await ok(embedded.call("POST", "/v1/debits", { account_id: id, amount: "1", idempotency_key: "live-d" }));
    // A depletion is an observation: a read at zero (docs/design.md section 14).
    await ok(embedded.call("GET", `/v1/balances/${id}`), 200);
    const reader = stream.body!.getReader();
    const decoder = new TextDecoder();
    let received = "";
    const deadline = Date.now() + 20_000;
    while (!received.includes(`{"type":"balance_depleted","account_id":"${id}"}`) && Date.now() < deadline) {
      const { value, done } = await reader.read();
      if (done) break;
      received += decoder.decode(value);
    }
    await reader.cancel();
    expect(received).toContain("event: balance_depleted");
    expect(received).toContain(`{"type":"balance_depleted","account_id":"${id}"}`);

    // Without a session the stream is refused, so EventSource stops instead of retrying forever.
    const anonymous = await embedded.app.request("/console/events/stream");
    expect(anonymous.status).toBe(401);
  });
});
