import { mkdtempSync, rmSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { serve, type ServerType } from "@hono/node-server";
import { SignJWT } from "jose";
import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApp } from "../../src/app.js";
import { ServiceKeyVerifier } from "../../src/auth/service-keys.js";
import { createLogger } from "../../src/logger.js";
import { createHarness, ADMIN_KEY, JWT_AUDIENCE, JWT_SECRET, uniqueId, type Harness } from "../support/harness.js";

/**
 * The admin console in a real browser (Debian's chromium, driven by playwright-core) against a real tally: the app
 * served over HTTP on a random port, on the test PostgreSQL database. Screenshots of the main pages are taken on
 * every run, into a temporary directory; with CONSOLE_SCREENSHOTS=1 they replace the README's ones in docs/console/
 * (see docs/console/README.md), so an ordinary run never changes the git tree.
 */
// Functions passed to page.evaluate run in the browser; the test's TypeScript program has no DOM types.
declare const document: any;

const CHROMIUM = "/usr/bin/chromium";
const SCREENSHOTS = process.env.CONSOLE_SCREENSHOTS === "1" ? "docs/console" : mkdtempSync(path.join(tmpdir(), "tally-console-screenshots-"));

let harness: Harness;
let server: ServerType;
let browser: Browser;
let base: string;

beforeAll(async () => {
  harness = createHarness();
  server = serve({ fetch: harness.app.fetch, hostname: "127.0.0.1", port: 0 });
  await new Promise<void>((resolve) => server.once("listening", () => resolve()));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: process.getuid?.() === 0 ? ["--no-sandbox"] : [] });
});

afterAll(async () => {
  await browser?.close();
  await new Promise((resolve) => server?.close(resolve));
  await harness?.close();
  if (process.env.CONSOLE_SCREENSHOTS !== "1") rmSync(SCREENSHOTS, { recursive: true, force: true });
});

async function signedIn(credential: string): Promise<{ context: BrowserContext; page: Page }> {
  const context = await browser.newContext({ baseURL: base, viewport: { width: 1100, height: 800 } });
  const page = await context.newPage();
  await page.goto("/console");
  await page.getByLabel("Key or token").fill(credential);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForLoadState();
  return { context, page };
}

/** An account with an expiring credit, a few usage rows and one batch of three, all through the API. */
async function seededAccount(prefix: string): Promise<string> {
  const id = await harness.createAccount(uniqueId(prefix));
  const expires_at = new Date(Date.now() + 30 * 86_400_000).toISOString();
  const credit = await harness.post("/v1/credits", { account_id: id, type: "purchase", amount: "100", idempotency_key: uniqueId("k"), description: "starter pack", expires_at });
  expect(credit.status).toBe(201);
  for (const amount of ["1.5", "2.25"]) {
    expect((await harness.post("/v1/usage", { account_id: id, amount, idempotency_key: uniqueId("k"), description: "api call" })).status).toBe(201);
  }
  const batch_id = crypto.randomUUID();
  const rows = ["0.1", "0.2", "0.3"].map((amount) => ({ account_id: id, amount, idempotency_key: uniqueId("k"), batch_id, description: "batched call" }));
  expect((await harness.post("/v1/usage/batch", { entries: rows })).status).toBe(200);
  return id;
}

async function entryCount(account_id: string): Promise<number> {
  const history = await harness.get(`/v1/accounts/${account_id}/entries?group_batches=false&limit=500`);
  expect(history.status).toBe(200);
  return history.body.items.length;
}

describe("console in a browser", () => {
  it("signs in with the admin key, finds an account, and shows grouped history whose running balances match the API", async () => {
    const prefix = uniqueId("find");
    const id = await seededAccount(prefix);
    const context = await browser.newContext({ baseURL: base, viewport: { width: 1100, height: 800 } });
    const page = await context.newPage();
    await page.goto("/console");
    await page.screenshot({ path: `${SCREENSHOTS}/sign-in.png` });
    await page.getByLabel("Key or token").fill(ADMIN_KEY);
    await page.getByRole("button", { name: "Sign in" }).click();
    await expect.poll(() => page.url()).toContain("/console/accounts");

    // The cookie is HttpOnly, SameSite=Strict, expiring, and holds no key.
    const [cookie] = await context.cookies();
    expect(cookie).toMatchObject({ name: "tally_console", httpOnly: true, sameSite: "Strict" });
    expect(cookie!.expires).toBeGreaterThan(Date.now() / 1000);
    expect(cookie!.value).not.toContain(ADMIN_KEY);
    expect(Buffer.from(cookie!.value.split(".")[0]!, "base64url").toString()).not.toContain(ADMIN_KEY);

    // A hold, so available and held differ from the balance.
    expect((await harness.post("/v1/holds", { account_id: id, amount: "2.5", idempotency_key: uniqueId("h"), description: "call in flight" })).status).toBe(201);
    await page.getByLabel("Account id starts with").fill(prefix);
    await page.getByRole("button", { name: "Search" }).click();
    await expect.poll(() => page.locator("tbody tr").count()).toBe(1);
    // The list's available, held and expiring credit are the API's.
    const balance = (await harness.get(`/v1/balances/${id}`)).body;
    const row = page.locator(`tr[data-account-id="${id}"]`);
    expect((await row.locator("[data-available]").innerText()).trim()).toBe(balance.available);
    expect(balance.available).toBe("93.15");
    expect((await row.locator("[data-held]").innerText()).trim()).toBe("2.5");
    expect((await row.locator("[data-expiring]").innerText()).trim()).toBe(`${balance.expiring_next.amount} on ${balance.expiring_next.expires_at.slice(0, 16).replace("T", " ")}`);
    await page.screenshot({ path: `${SCREENSHOTS}/accounts.png` });
    await page.getByRole("link", { name: id }).click();
    await page.waitForSelector("h1:has-text('Account')");

    const api = await harness.get(`/v1/accounts/${id}/entries`);
    expect(api.status).toBe(200);
    // Grouped: the credit, two usage rows and one batch item.
    expect(api.body.items).toHaveLength(4);
    const rows = page.locator("tbody tr[data-item-id]");
    expect(await rows.count()).toBe(4);
    for (const [index, item] of api.body.items.entries()) {
      expect(await rows.nth(index).getAttribute("data-item-id")).toBe(item.id);
      expect((await rows.nth(index).locator("[data-balance-after]").innerText()).trim()).toBe(item.balance_after);
    }
    expect((await page.getByTestId("balance").innerText()).trim()).toBe("95.65");
    expect((await page.getByTestId("available").innerText()).trim()).toBe("93.15");
    expect((await page.getByTestId("held").innerText()).trim()).toBe("2.5");
    expect((await page.getByTestId("expiring").innerText()).trim()).toMatch(/^95\.65 on \d{4}-\d{2}-\d{2} \d{2}:\d{2}$/);
    expect(await page.locator("tr[data-hold-id]").count()).toBe(1);
    expect((await page.locator("tr[data-lot-id] td").nth(3).innerText()).trim()).toBe("95.65");
    await page.getByRole("link", { name: "show batch of 3" }).click();
    await expect.poll(() => page.locator("tr.batch-row").count()).toBe(3);
    expect(await page.locator("svg[role=img] rect").count()).toBeGreaterThan(0);
    await page.screenshot({ path: `${SCREENSHOTS}/account.png`, fullPage: true });

    // Filters: only the credit.
    await page.getByLabel("Type").selectOption("purchase");
    await page.getByRole("button", { name: "Filter" }).click();
    await expect.poll(() => page.locator("tbody tr[data-item-id]").count()).toBe(1);
    await context.close();
  });

  it("posts a credit through the confirmation step, and a double submission writes one entry", async () => {
    const id = await seededAccount("credit");
    const { context, page } = await signedIn(ADMIN_KEY);
    await page.goto(`/console/accounts/${id}/credit`);
    await page.getByLabel("Type").selectOption("bonus");
    await page.getByLabel("Amount").fill("7.5");
    await page.getByLabel("Description").fill("console bonus");
    const key = await page.locator("input[name=idempotency_key]").inputValue();
    expect(key).toMatch(/^console-[0-9a-f-]{36}$/);
    await page.getByRole("button", { name: "Review" }).click();
    await page.waitForSelector("text=Confirm and post");
    // The key was made with the form page and carried through review, so resending any step reuses it.
    expect(await page.locator("input[name=idempotency_key]").inputValue()).toBe(key);
    expect((await page.getByTestId("confirm-amount").innerText()).trim()).toBe("7.5");
    await page.screenshot({ path: `${SCREENSHOTS}/confirm.png` });
    const before = await entryCount(id);

    // A double click at the network level: the same confirmation form sent twice at once, then clicked for real.
    const statuses = await page.evaluate(async () => {
      const form = document.querySelector("form[action$='/credit']") as any;
      const send = () => fetch(form.action, { method: "POST", body: new URLSearchParams(new (FormData as any)(form)), redirect: "manual" }).then((r) => r.type === "opaqueredirect" ? 303 : r.status);
      return Promise.all([send(), send()]);
    });
    expect(statuses).toEqual([303, 303]);
    await page.getByRole("button", { name: "Confirm and post" }).click();
    await page.waitForSelector("[role=status]");
    expect(await page.locator("[role=status]").innerText()).toContain("Already posted");
    expect(await entryCount(id)).toBe(before + 1);
    expect((await page.getByTestId("balance").innerText()).trim()).toBe("103.15");
    expect(await page.locator("tbody tr[data-item-id]").first().innerText()).toContain("console bonus");
    await context.close();
  });

  it("refuses what the key's scopes forbid, and a forged form", async () => {
    const id = await seededAccount("scopes");
    const reader = await harness.serviceKey(["balances:read", "history:read"]);
    const { context, page } = await signedIn(reader);
    await page.goto(`/console/accounts/${id}`);
    expect((await page.getByTestId("balance").innerText()).trim()).toBe("95.65");
    const response = await page.goto(`/console/accounts/${id}/credit`);
    expect(response!.status()).toBe(403);
    expect(await page.locator("[role=alert]").innerText()).toContain("credits:write");
    // Even with this session's valid form token, the post itself is refused.
    const csrf = await page.locator("input[name=csrf]").first().inputValue();
    const direct = await page.evaluate(
      async ({ path, token }) => (await fetch(path, { method: "POST", body: new URLSearchParams({ csrf: token, type: "grant", amount: "1", idempotency_key: "scope-test" }) })).status,
      { path: `/console/accounts/${id}/credit`, token: csrf },
    );
    expect(direct).toBe(403);
    await context.close();

    // A forged form: an admin session, a post without (or with another session's) form token.
    const admin = await signedIn(ADMIN_KEY);
    const before = await entryCount(id);
    for (const token of ["", csrf, "forged.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"]) {
      const status = await admin.page.evaluate(
        async ({ path, token }) => (await fetch(path, { method: "POST", body: new URLSearchParams({ csrf: token, type: "grant", amount: "1", idempotency_key: `forged-${token.length}` }) })).status,
        { path: `/console/accounts/${id}/credit`, token },
      );
      expect(status).toBe(403);
    }
    // From another origin (the Origin check), even with a valid token.
    const validToken = await admin.page.locator("input[name=csrf]").first().inputValue();
    const cross = await admin.context.request.post(`${base}/console/accounts/${id}/credit`, {
      form: { csrf: validToken, type: "grant", amount: "1", idempotency_key: "cross-origin" },
      headers: { origin: "http://evil.example" },
    });
    expect(cross.status()).toBe(403);
    expect(await entryCount(id)).toBe(before);
    await admin.context.close();
  });

  it("a keyboard-only user posts a correction (a strict debit)", async () => {
    const id = await seededAccount("keys");
    const { context, page } = await signedIn(ADMIN_KEY);
    await page.goto(`/console/accounts/${id}`);
    const before = await entryCount(id);
    // Tab to the link, as a keyboard user would.
    for (let step = 0; step < 20; step++) {
      await page.keyboard.press("Tab");
      if ((await page.evaluate(() => document.activeElement?.textContent)) === "Post a correction") break;
    }
    await page.keyboard.press("Enter");
    await page.waitForSelector("text=A strict debit");
    await page.keyboard.press("Tab"); // skip the header's sign-out button
    while ((await page.evaluate(() => (document.activeElement as any)?.name)) !== "amount") await page.keyboard.press("Tab");
    await page.keyboard.type("5.65");
    await page.keyboard.press("Tab");
    await page.keyboard.type("keyboard correction");
    await page.keyboard.press("Enter");
    await page.waitForSelector("text=Confirm and post");
    while ((await page.evaluate(() => document.activeElement?.textContent)) !== "Confirm and post") await page.keyboard.press("Tab");
    await page.keyboard.press("Enter");
    await page.waitForSelector("[role=status]");
    expect((await page.getByTestId("balance").innerText()).trim()).toBe("90");
    expect(await entryCount(id)).toBe(before + 1);

    // Strict: a correction larger than the balance is refused and writes nothing.
    await page.goto(`/console/accounts/${id}/correction`);
    await page.getByLabel("Amount").fill("1000");
    await page.getByRole("button", { name: "Review" }).click();
    await page.getByRole("button", { name: "Confirm and post" }).click();
    await page.waitForSelector("[role=alert]");
    expect(await entryCount(id)).toBe(before + 1);
    await context.close();
  });

  it("a keyboard-only user signs in, searches, opens an account, filters, expands a batch, posts a credit and signs out", async () => {
    const prefix = uniqueId("kbd");
    const id = await seededAccount(prefix);
    const context = await browser.newContext({ baseURL: base, viewport: { width: 1100, height: 800 } });
    const page = await context.newPage();
    const violations: string[] = [];
    page.on("console", (message) => {
      if (/Content Security Policy/i.test(message.text())) violations.push(message.text());
    });
    const focused = () => page.evaluate(() => ({ text: document.activeElement?.textContent?.trim(), name: (document.activeElement as any)?.name, tag: document.activeElement?.tagName }));
    /** Tabs until the focused element matches, as a keyboard user would; fails if it is not reachable. */
    const tabTo = async (matches: (element: { text?: string; name?: string; tag?: string }) => boolean) => {
      for (let step = 0; step < 60; step++) {
        await page.keyboard.press("Tab");
        if (matches(await focused())) return;
      }
      throw new Error("not reachable with the Tab key");
    };
    await page.goto("/console");
    // The credential field has focus on arrival.
    expect((await focused()).name).toBe("credential");
    await page.keyboard.type(ADMIN_KEY);
    await page.keyboard.press("Enter");
    await page.waitForURL("**/console/accounts");
    // The first Tab reaches the skip link.
    await page.keyboard.press("Tab");
    expect((await focused()).text).toBe("Skip to content");
    await tabTo((element) => element.name === "prefix");
    await page.keyboard.type(prefix);
    await page.keyboard.press("Enter");
    await expect.poll(() => page.locator("tbody tr").count()).toBe(1);
    await tabTo((element) => element.text === id);
    await page.keyboard.press("Enter");
    await page.waitForSelector("h1:has-text('Account')");

    await tabTo((element) => element.text === "show batch of 3");
    await page.keyboard.press("Enter");
    await expect.poll(() => page.locator("tr.batch-row").count()).toBe(3);
    await tabTo((element) => element.name === "type" && element.tag === "SELECT");
    await page.keyboard.type("usage");
    await tabTo((element) => element.text === "Filter");
    await page.keyboard.press("Enter");
    await expect.poll(() => page.locator("tbody tr[data-item-id]").count()).toBe(3);

    const before = await entryCount(id);
    await tabTo((element) => element.text === "Post a credit");
    await page.keyboard.press("Enter");
    await page.waitForSelector("text=Review");
    await tabTo((element) => element.name === "type");
    await page.keyboard.press("ArrowDown");
    const chosen = await page.locator("select[name=type]").inputValue();
    expect(chosen).not.toBe("grant");
    await page.keyboard.press("Tab");
    await page.keyboard.type("4");
    await page.keyboard.press("Enter");
    await page.waitForSelector("text=Confirm and post");
    await tabTo((element) => element.text === "Confirm and post");
    await page.keyboard.press("Enter");
    await page.waitForSelector("[role=status]");
    expect((await page.getByTestId("balance").innerText()).trim()).toBe("99.65");
    expect(await entryCount(id)).toBe(before + 1);

    await tabTo((element) => element.text === "Sign out");
    await page.keyboard.press("Enter");
    await page.waitForURL("**/console/sign-in");
    expect(await context.cookies()).toHaveLength(0);
    expect(violations).toEqual([]);
    await context.close();
  });

  it("marks accounts live on the accounts page as they are depleted and restored", async () => {
    const prefix = uniqueId("live");
    const id = await harness.createAccount(`${prefix}_a`);
    expect((await harness.post("/v1/credits", { account_id: id, type: "grant", amount: "1", idempotency_key: uniqueId("k") })).status).toBe(201);
    const { context, page } = await signedIn(ADMIN_KEY);
    const requests: string[] = [];
    page.on("request", (request) => requests.push(new URL(request.url()).pathname));
    await page.goto(`/console/accounts?prefix=${prefix}`);
    const status = page.locator(`[data-status-for="${id}"]`);
    expect((await status.innerText()).trim()).toBe("");
    // The page follows the event stream (no polling): wait until it is connected, then change the balance by the API.
    await expect.poll(() => page.locator("table[data-live]").getAttribute("data-live")).toBe("connected");
    await page.evaluate(() => ((globalThis as any).notReloaded = true));
    expect((await harness.post("/v1/debits", { account_id: id, amount: "1", idempotency_key: uniqueId("k") })).status).toBe(201);
    // A depletion is an observation: a gateway reads the balance at zero (design section 14).
    expect((await harness.get(`/v1/accounts/${id}`)).body.balance).toBe("0");
    await expect.poll(() => status.innerText(), { timeout: 15_000 }).toBe("depleted");
    expect((await harness.post("/v1/credits", { account_id: id, type: "grant", amount: "2", idempotency_key: uniqueId("k") })).status).toBe(201);
    await expect.poll(() => status.innerText(), { timeout: 15_000 }).toBe("restored");
    expect(await page.evaluate(() => (globalThis as any).notReloaded)).toBe(true);
    expect(requests.filter((path) => path === "/console/accounts")).toHaveLength(1);
    // One stream, no polling. An EventSource reconnects by itself (after `retry`, 1 s) when a connection drops, which
    // a loaded CI machine did once; a page that polled would show a request per interval.
    const streamRequests = requests.filter((path) => path.startsWith("/console/events"));
    expect(new Set(streamRequests)).toEqual(new Set(["/console/events/stream"]));
    expect(streamRequests.length).toBeLessThanOrEqual(2);
    await context.close();
  });

  it("an end-user token gets a read-only view of its own account only", async () => {
    const id = await seededAccount("user");
    const other = await seededAccount("other");
    const token = await new SignJWT({}).setProtectedHeader({ alg: "HS256" }).setSubject(id).setAudience(JWT_AUDIENCE).setExpirationTime("5m").sign(new TextEncoder().encode(JWT_SECRET));
    const { context, page } = await signedIn(token);
    expect(page.url()).toContain(`/console/accounts/${id}`);
    expect(await page.getByRole("link", { name: "Post a credit" }).count()).toBe(0);
    expect((await page.goto(`/console/accounts/${other}`))!.status()).toBe(403);
    expect((await page.goto(`/console/accounts/${id}/credit`))!.status()).toBe(403);
    await context.close();
  });
});

describe("console without a browser", () => {
  it("sets a strict Content-Security-Policy, refuses a bad key, and is absent when disabled", async () => {
    const signIn = await harness.app.request("/console/sign-in");
    expect(signIn.headers.get("content-security-policy")).toContain("script-src 'self'");
    expect(signIn.headers.get("content-security-policy")).toContain("default-src 'none'");
    const bad = await harness.app.request("/console/sign-in", { method: "POST", body: new URLSearchParams({ credential: "tk_nope" }), headers: { origin: "http://localhost" } });
    expect(bad.status).toBe(401);
    expect(bad.headers.get("set-cookie")).toBeNull();
    const anonymous = await harness.app.request("/console/accounts");
    expect(anonymous.status).toBe(303);
    expect(anonymous.headers.get("location")).toBe("/console/sign-in");

    const disabled = createApp({
      database: harness.database,
      ledger: harness.ledger,
      logger: createLogger("silent"),
      signer: harness.signer,
      authenticators: { service_keys: new ServiceKeyVerifier(harness.database.orm), jwt: undefined, admin_key: ADMIN_KEY },
      limits: { max_body_bytes: 1024, request_timeout_ms: 10_000, cors_origins: [] },
      console_enabled: false,
    });
    expect((await disabled.request("/console/sign-in")).status).toBe(404);
    expect((await disabled.request("/console/accounts")).status).toBe(404);

    // Behind a proxy that terminates TLS, the cookie is Secure.
    const proxied = await harness.app.request("/console/sign-in", {
      method: "POST",
      body: new URLSearchParams({ credential: ADMIN_KEY }),
      headers: { origin: "http://localhost", "x-forwarded-proto": "https" },
    });
    expect(proxied.status).toBe(303);
    expect(proxied.headers.get("set-cookie")).toMatch(/; Secure/);
    expect(proxied.headers.get("set-cookie")).toMatch(/; HttpOnly/);
    expect(proxied.headers.get("set-cookie")).toMatch(/; SameSite=Strict/);
  });
});
