/**
 * The embedded store's first start loads the bundled template instead of running initdb (src/db/embedded-template.ts)
 * and says what it is doing; a template made for another PGlite is ignored.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TEMPLATE_ARCHIVE, installedPgliteVersion, loadTemplate } from "../../src/db/embedded-template.js";
import { openDatabase } from "../../src/db/open.js";

let dataDir: string;
beforeAll(async () => {
  dataDir = await mkdtemp(path.join(tmpdir(), "tally-template-"));
});
afterAll(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

const config = () => ({ DATABASE_URL: undefined, DATA_DIR: dataDir, DATABASE_POOL_MAX: 1, REQUEST_TIMEOUT_MS: 30_000 });

describe("embedded store template", () => {
  it("is the one for the installed PGlite (after an upgrade: npm run embedded:template)", () => {
    const loaded = loadTemplate();
    expect("reason" in loaded ? loaded.reason : "usable").toBe("usable");
  });

  it("is ignored when made for another PGlite version", async () => {
    const manifest = path.join(dataDir, "other.json");
    await writeFile(manifest, JSON.stringify({ pglite_version: "0.0.1", postgres_version: "1" }));
    const loaded = loadTemplate({ archive: TEMPLATE_ARCHIVE, manifest });
    expect("reason" in loaded && loaded.reason).toContain(`for PGlite 0.0.1, this is ${installedPgliteVersion()}`);
  });

  it("makes a working store on the first start, saying so, and says nothing on the next", async () => {
    const first: string[] = [];
    const database = await openDatabase(config(), { migrate: true, on_progress: (message) => first.push(message) });
    try {
      expect(first).toHaveLength(2);
      expect(first[0]).toMatch(/^initialising the embedded store in .* from the bundled template \(first start\)$/);
      expect(first[1]).toMatch(/^migrating: applying \d+ migration\(s\)$/);
      const [row] = await database.query<{ count: string }>("SELECT count(*)::text AS count FROM entries");
      expect(row!.count).toBe("0");
    } finally {
      await database.close();
    }
    const again: string[] = [];
    const reopened = await openDatabase(config(), { migrate: true, on_progress: (message) => again.push(message) });
    await reopened.close();
    expect(again).toEqual([]);
  });
});
