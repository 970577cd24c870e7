import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ERROR_CATALOGUE } from "../../src/errors.js";
import { createHarness } from "../support/harness.js";

const harness = createHarness();
afterAll(() => harness.close());

const PATHS = [
  "/v1/usage",
  "/v1/usage/batch",
  "/v1/credits",
  "/v1/debits",
  "/v1/balances/{account_id}",
  "/v1/balances/query",
  "/v1/balances/check",
  "/v1/accounts",
  "/v1/accounts/{id}",
  "/v1/me",
  "/v1/events",
  "/v1/accounts/{id}/entries",
  "/v1/me/entries",
  "/v1/entries",
  "/v1/entries/{entry_id}",
  "/v1/accounts/{id}/stats",
  "/health",
  "/ready",
  "/v1/keys",
  "/v1/keys/{id}",
  "/v1/entries/{entry_id}/refund",
  "/v1/transfers",
  "/v1/accounts/{id}/adjustments",
  "/v1/holds",
  "/v1/holds/{id}",
  "/v1/holds/{id}/capture",
  "/v1/holds/{id}/release",
  "/v1/accounts/{id}/holds",
  "/v1/accounts/{id}/lots",
  "/v1/credits/{entry_id}/expire",
  "/v1/prices",
  "/v1/prices/{meter}",
  "/v1/prices/estimate",
  "/v1/webhook-endpoints",
  "/v1/webhook-endpoints/{id}",
  "/v1/webhook-endpoints/{id}/rotate-secret",
  "/v1/webhook-endpoints/{id}/deliveries",
  "/v1/webhook-endpoints/{id}/deliveries/{delivery_id}/retry",
  "/v1/accounts/{id}/auto-topup",
  "/webhooks/stripe",
  "/v1/plans",
  "/v1/plans/{id}",
  "/v1/accounts/{id}/subscription",
  "/v1/renewals/run",
];
/** Served, but not part of the API the document describes: the document itself, its viewer, the metrics. */
const NOT_API_PATHS = new Set(["/openapi.json", "/docs", "/docs/scalar.js", "/metrics"]);
const METHODS = ["get", "put", "post", "delete", "patch", "head", "options", "trace"];
const PROBLEM = "application/problem+json";

interface Operation {
  security?: Record<string, string[]>[];
  parameters?: { name: string; in: string }[];
  requestBody?: { content: Record<string, unknown> };
  responses: Record<string, { description: string; content?: Record<string, { schema: unknown }> }>;
}
let doc: any;
let operations: { path: string; method: string; operation: Operation }[];

beforeAll(async () => {
  const response = await harness.get("/openapi.json", null);
  expect(response.status).toBe(200);
  expect(response.headers.get("content-type")).toMatch(/^application\/json/);
  doc = response.body;
  operations = Object.entries(doc.paths as Record<string, Record<string, Operation>>).flatMap(([path, item]) =>
    Object.entries(item)
      .filter(([method]) => METHODS.includes(method))
      .map(([method, operation]) => ({ path, method, operation })),
  );
});

/** The codes a documented error response names: its description lists them as `code`: title. */
function documentedCodes(response: { description: string }): string[] {
  return [...response.description.matchAll(/`([a-z_]+)`/g)].map((match) => match[1]!);
}
function codesOf(operation: Operation): Map<string, string> {
  const codes = new Map<string, string>();
  for (const [status, response] of Object.entries(operation.responses)) {
    if (Number(status) >= 400) for (const code of documentedCodes(response)) codes.set(code, status);
  }
  return codes;
}
const v1 = () => operations.filter(({ path }) => path.startsWith("/v1/"));

describe("GET /openapi.json", () => {
  it("is OpenAPI 3.1 and needs no credentials", () => {
    expect(doc.openapi).toMatch(/^3\.1\.\d+$/);
    expect(doc.info).toMatchObject({ title: "tally", version: expect.any(String) });
  });

  it("lists exactly the routes the app serves", () => {
    expect(Object.keys(doc.paths).sort()).toEqual([...PATHS].sort());
    const served = new Set(
      harness.app.routes
        .filter((route) => route.method !== "ALL" && !NOT_API_PATHS.has(route.path) && !route.path.startsWith("/console"))
        .map((route) => `${route.method.toLowerCase()} ${route.path.replace(/:([A-Za-z_]+)/g, "{$1}")}`),
    );
    const documented = new Set(operations.map(({ method, path }) => `${method} ${path}`));
    expect([...documented].sort()).toEqual([...served].sort());
    expect(documented).toEqual(
      new Set([
        "post /v1/usage", "post /v1/usage/batch", "post /v1/credits", "post /v1/debits", "get /v1/balances/{account_id}",
        "post /v1/balances/query", "post /v1/balances/check", "get /v1/accounts", "post /v1/accounts", "get /v1/accounts/{id}",
        "get /v1/me", "post /v1/me", "get /v1/events", "get /v1/accounts/{id}/entries", "get /v1/me/entries",
        "get /v1/entries", "get /v1/entries/{entry_id}", "get /v1/accounts/{id}/stats", "get /health", "get /ready",
        "post /v1/keys", "get /v1/keys", "delete /v1/keys/{id}",
        "post /v1/entries/{entry_id}/refund", "post /v1/transfers", "post /v1/accounts/{id}/adjustments",
        "post /v1/holds", "get /v1/holds/{id}", "post /v1/holds/{id}/capture", "post /v1/holds/{id}/release",
        "get /v1/accounts/{id}/holds",
        "get /v1/accounts/{id}/lots", "post /v1/credits/{entry_id}/expire",
        "put /v1/prices/{meter}", "get /v1/prices", "get /v1/prices/{meter}", "post /v1/prices/estimate",
        "post /v1/webhook-endpoints", "get /v1/webhook-endpoints", "get /v1/webhook-endpoints/{id}",
        "patch /v1/webhook-endpoints/{id}", "delete /v1/webhook-endpoints/{id}", "post /v1/webhook-endpoints/{id}/rotate-secret",
        "get /v1/webhook-endpoints/{id}/deliveries", "post /v1/webhook-endpoints/{id}/deliveries/{delivery_id}/retry",
        "put /v1/accounts/{id}/auto-topup", "get /v1/accounts/{id}/auto-topup", "delete /v1/accounts/{id}/auto-topup",
        "post /webhooks/stripe",
        "post /v1/plans", "get /v1/plans", "get /v1/plans/{id}", "patch /v1/plans/{id}", "put /v1/accounts/{id}/subscription",
        "get /v1/accounts/{id}/subscription", "delete /v1/accounts/{id}/subscription", "post /v1/renewals/run",
      ]),
    );
  });

  it("every documented path answers (no route is documented but missing)", async () => {
    // A key with no scopes: a matched /v1 route refuses it with 403 before doing any work (so the event stream
    // never opens), while a path the app does not serve is 404.
    const token = await harness.serviceKey([]);
    for (const { method, path } of operations) {
      const concrete = path.replace(/\{[^}]+\}/g, "probe_account");
      const response = await harness.request(method.toUpperCase(), concrete, { token, ...(method === "post" ? { body: {} } : {}) });
      expect(response.body?.code, `${method} ${path}`).not.toBe("not_found");
      if (path.startsWith("/v1/")) expect(response.status, `${method} ${path}`).toBe(403);
    }
  });

  it("declares the bearer scheme, which every /v1 operation requires and the probes do not", () => {
    expect(doc.components.securitySchemes.bearer).toMatchObject({ type: "http", scheme: "bearer" });
    expect(v1().length).toBe(54);
    for (const { path, method, operation } of v1()) {
      expect(operation.security, `${method} ${path}`).toEqual([{ bearer: [] }]);
    }
    for (const path of ["/health", "/ready"]) expect(doc.paths[path].get.security ?? []).toEqual([]);
  });

  it("every /v1 operation documents 401, 403 and 500 as problem+json", () => {
    for (const { path, method, operation } of v1()) {
      for (const [status, code] of [["401", "unauthorized"], ["403", "forbidden"], ["500", "internal_error"]] as const) {
        const response = operation.responses[status];
        expect(response, `${method} ${path} ${status}`).toBeDefined();
        expect(Object.keys(response!.content ?? {}), `${method} ${path} ${status}`).toEqual([PROBLEM]);
        expect(response!.content![PROBLEM]!.schema).toEqual({ $ref: "#/components/schemas/Problem" });
        expect(documentedCodes(response!)).toContain(code);
      }
    }
  });

  it("every error response is problem+json and names only catalogued codes, under the catalogue's status", () => {
    for (const { path, method, operation } of operations) {
      for (const [status, response] of Object.entries(operation.responses)) {
        if (Number(status) < 400) continue;
        const where = `${method} ${path} ${status}`;
        expect(Object.keys(response.content ?? {}), where).toEqual([PROBLEM]);
        const codes = documentedCodes(response);
        expect(codes.length, where).toBeGreaterThan(0);
        for (const code of codes) {
          expect(Object.keys(ERROR_CATALOGUE), where).toContain(code);
          expect(String(ERROR_CATALOGUE[code as keyof typeof ERROR_CATALOGUE].status), `${where} ${code}`).toBe(status);
        }
      }
    }
  });

  it("the Problem schema's code enum is the catalogue", () => {
    const problem = doc.components.schemas.Problem;
    expect(problem.required).toEqual(expect.arrayContaining(["type", "title", "status", "detail", "code"]));
    expect([...problem.properties.code.enum].sort()).toEqual(Object.keys(ERROR_CATALOGUE).sort());
  });

  it("each route documents the codes its own logic returns", () => {
    const expectations: Record<string, string[]> = {
      "post /v1/usage": ["validation_failed", "account_not_found", "idempotency_key_reused"],
      "post /v1/usage/batch": ["validation_failed", "account_not_found", "idempotency_key_reused"],
      "post /v1/credits": ["validation_failed", "account_not_found", "idempotency_key_reused"],
      "post /v1/debits": ["validation_failed", "account_not_found", "idempotency_key_reused", "insufficient_balance"],
      "get /v1/balances/{account_id}": ["validation_failed", "account_not_found"],
      "post /v1/balances/query": ["validation_failed"],
      "post /v1/balances/check": ["validation_failed", "account_not_found"],
      "get /v1/accounts": ["validation_failed", "invalid_cursor"],
      "get /v1/accounts/{id}": ["validation_failed", "account_not_found"],
      "get /v1/me": ["account_not_found"],
      "post /v1/me": ["validation_failed"],
      "get /ready": ["service_unavailable"],
    };
    for (const [key, codes] of Object.entries(expectations)) {
      const [method, path] = key.split(" ") as [string, string];
      expect([...codesOf(doc.paths[path][method]).keys()], key).toEqual(expect.arrayContaining(codes));
    }
  });

  it("each operation that takes a JSON body documents every refusal the body can get", () => {
    // The app sends all of these for any /v1 body (see bad-input.test.ts): 400 invalid_json from the validator,
    // 413 from the /v1/* body limit, 415 from the media-type gate.
    const withBody = v1().filter(({ operation }) => operation.requestBody);
    expect(withBody.map(({ method, path }) => `${method} ${path}`).sort()).toEqual(
      [
        "post /v1/accounts", "post /v1/accounts/{id}/adjustments", "post /v1/balances/check", "post /v1/balances/query", "post /v1/credits",
        "patch /v1/webhook-endpoints/{id}", "post /v1/debits", "post /v1/entries/{entry_id}/refund",
        "post /v1/holds", "post /v1/holds/{id}/capture", "post /v1/keys", "post /v1/me", "post /v1/prices/estimate",
        "post /v1/transfers", "post /v1/usage", "post /v1/usage/batch", "post /v1/webhook-endpoints",
        "put /v1/accounts/{id}/auto-topup", "put /v1/prices/{meter}",
        "post /v1/plans", "patch /v1/plans/{id}", "put /v1/accounts/{id}/subscription", "post /v1/renewals/run",
      ].sort(),
    );
    const missing: string[] = [];
    for (const { method, path, operation } of withBody) {
      expect(Object.keys(operation.requestBody!.content)).toEqual(["application/json"]);
      const codes = codesOf(operation);
      for (const code of ["validation_failed", "invalid_json", "payload_too_large", "unsupported_media_type"]) {
        if (!codes.has(code)) missing.push(`${method} ${path}: ${code}`);
      }
    }
    expect(missing).toEqual([]);
  });

  it("documents the success statuses the routes send", () => {
    for (const path of ["/v1/usage", "/v1/credits", "/v1/debits", "/v1/accounts", "/v1/me"]) {
      expect(Object.keys(doc.paths[path].post.responses), path).toEqual(expect.arrayContaining(["200", "201"]));
    }
    expect(Object.keys(doc.paths["/v1/usage/batch"].post.responses)).toContain("200");
  });
});
