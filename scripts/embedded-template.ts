// Makes embedded/pgdata-template.tar.gz: an empty PGlite cluster, freshly initialised, which the embedded store's
// first start loads instead of running initdb (src/db/embedded-template.ts). Run it after upgrading
// @electric-sql/pglite; test/integration/embedded-template.test.ts fails until then.
import { mkdir, writeFile } from "node:fs/promises";
import { PGlite } from "@electric-sql/pglite";
import { TEMPLATE_ARCHIVE, TEMPLATE_DIRECTORY, TEMPLATE_MANIFEST, installedPgliteVersion, type TemplateManifest } from "../src/db/embedded-template.js";

const client = await PGlite.create();
const [row] = (await client.query<{ server_version: string }>("SHOW server_version")).rows;
const archive = await client.dumpDataDir("gzip");
await client.close();
await mkdir(TEMPLATE_DIRECTORY, { recursive: true });
await writeFile(TEMPLATE_ARCHIVE, Buffer.from(await archive.arrayBuffer()));
const manifest: TemplateManifest = { pglite_version: installedPgliteVersion(), postgres_version: row!.server_version };
await writeFile(TEMPLATE_MANIFEST, `${JSON.stringify(manifest, null, 2)}\n`);
process.stdout.write(`wrote ${TEMPLATE_ARCHIVE} (${archive.size} bytes) for PGlite ${manifest.pglite_version}, PostgreSQL ${manifest.postgres_version}\n`);
