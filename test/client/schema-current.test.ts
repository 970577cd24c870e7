import { readFile } from "node:fs/promises";
import { describe, expect, it } from "vitest";
import { generateClientSchema, SCHEMA_FILE } from "../../scripts/client-generate.js";

describe("clients/typescript/src/schema.ts", () => {
  it("matches the OpenAPI document the server serves (run `npm run client:generate` after changing a route)", async () => {
    const committed = await readFile(SCHEMA_FILE, "utf8");
    expect(committed === (await generateClientSchema()), "the client's types are stale: run `npm run client:generate`").toBe(true);
  });
});
