import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

/**
 * A freshly initialised PGlite data directory, made once by `npm run embedded:template` and kept in the repository
 * (embedded/), which the embedded store's first start loads instead of running initdb. PGlite's initdb runs a
 * second PostgreSQL instance beside the first, plus the initdb module, and copies the result across in memory:
 * measured on a fresh directory, the first start peaked at 847 MiB and took 13 s, where loading this template
 * peaks at 361 MiB and takes about 4.6 s (docs/design.md section 22). It is an empty cluster, before tally's
 * migrations, so it depends only on the PGlite build: its manifest names the PGlite version it was made with, and a
 * template for another version is ignored (initdb runs, as before). Every cluster made from it shares one system
 * identifier, which only matters to physical replication, and PGlite has none.
 */
export const TEMPLATE_DIRECTORY = fileURLToPath(new URL("../../embedded", import.meta.url));
export const TEMPLATE_ARCHIVE = path.join(TEMPLATE_DIRECTORY, "pgdata-template.tar.gz");
export const TEMPLATE_MANIFEST = path.join(TEMPLATE_DIRECTORY, "pgdata-template.json");

export interface TemplateManifest {
  pglite_version: string;
  postgres_version: string;
}

export function installedPgliteVersion(): string {
  const require = createRequire(import.meta.url);
  // The package exports no package.json; its entry point sits in dist/, one level below it.
  const entry = require.resolve("@electric-sql/pglite");
  const manifest = JSON.parse(readFileSync(path.join(path.dirname(entry), "..", "package.json"), "utf8")) as { version: string };
  return manifest.version;
}

/** The template as a Blob for PGlite's `loadDataDir`, or why it cannot be used. */
export function loadTemplate(
  paths: { archive: string; manifest: string } = { archive: TEMPLATE_ARCHIVE, manifest: TEMPLATE_MANIFEST },
): { template: Blob } | { reason: string } {
  if (!existsSync(paths.archive) || !existsSync(paths.manifest)) return { reason: "no bundled template" };
  const manifest = JSON.parse(readFileSync(paths.manifest, "utf8")) as TemplateManifest;
  const installed = installedPgliteVersion();
  if (manifest.pglite_version !== installed) {
    return { reason: `the bundled template is for PGlite ${manifest.pglite_version}, this is ${installed} (npm run embedded:template)` };
  }
  return { template: new Blob([readFileSync(paths.archive)]) };
}
