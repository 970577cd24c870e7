import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { createHarness } from "../support/harness.js";

const harness = createHarness();
afterAll(() => harness.close());
const METHODS = ["get", "put", "post", "delete", "patch"];

async function document(): Promise<any> {
  return (await harness.get("/openapi.json", null)).body;
}

function operations(doc: any): { path: string; method: string; operation: any }[] {
  return Object.entries<any>(doc.paths).flatMap(([path, item]) =>
    METHODS.filter((method) => item[method]).map((method) => ({ path, method, operation: item[method] })),
  );
}

describe("the OpenAPI document's quality", () => {
  it("names every operation with a unique operationId, so generated clients have named calls", async () => {
    const ids = operations(await document()).map(({ path, method, operation }) => {
      expect(operation.operationId, `${method} ${path} has no operationId`).toMatch(/^[a-z][A-Za-z]+$/);
      return operation.operationId;
    });
    expect(new Set(ids).size).toBe(ids.length);
  });

  it("declares servers and the headers tally sends: X-Request-Id everywhere, Idempotent-Replayed on replays, Retry-After on 503", async () => {
    const doc = await document();
    expect(doc.servers).toEqual([{ url: "/", description: expect.any(String) }]);
    for (const { path, method, operation } of operations(doc)) {
      for (const [status, response] of Object.entries<any>(operation.responses)) {
        expect(response.headers?.["X-Request-Id"], `${method} ${path} ${status}`).toEqual({ $ref: "#/components/headers/X-Request-Id" });
        if (status === "503") expect(response.headers["Retry-After"], `${method} ${path}`).toBeDefined();
      }
    }
    expect(doc.paths["/v1/credits"].post.responses["200"].headers["Idempotent-Replayed"]).toEqual({ $ref: "#/components/headers/Idempotent-Replayed" });
    expect(doc.paths["/v1/credits"].post.responses["201"].headers["Idempotent-Replayed"]).toBeUndefined();
  });

  it("sends Retry-After with a 503, as documented", async () => {
    const broken = createHarness();
    await broken.database.close();
    const response = await broken.get("/ready", null);
    expect(response.status).toBe(503);
    expect(response.headers.get("retry-after")).toBe("1");
  });

  it("lints clean under @redocly/cli's recommended rules (the check CI runs)", async () => {
    const directory = await mkdtemp(path.join(tmpdir(), "tally-openapi-"));
    try {
      const file = path.join(directory, "openapi.json");
      await writeFile(file, JSON.stringify(await document()));
      const { lintOpenApi } = await import("../../scripts/openapi-lint.js");
      const problems = await lintOpenApi(file);
      expect(problems, problems.join("\n")).toEqual([]);
    } finally {
      await rm(directory, { recursive: true, force: true });
    }
  });
});

describe("GET /docs", () => {
  it("renders the live document with a viewer served by tally itself, so it works offline", async () => {
    const page = await harness.app.request("/docs");
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).toContain('"url": "/openapi.json"');
    const scripts = [...html.matchAll(/<script[^>]*src="([^"]+)"/g)].map((match) => match[1]);
    expect(scripts).toEqual(["/docs/scalar.js"]);
    expect(html).not.toMatch(/https?:\/\/(cdn|fonts)\./);
    const script = await harness.app.request("/docs/scalar.js");
    expect(script.status).toBe(200);
    expect(script.headers.get("content-type")).toMatch(/javascript/);
    expect((await script.arrayBuffer()).byteLength).toBeGreaterThan(100_000);
  });
});
