import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { Scalar } from "@scalar/hono-api-reference";
import { Hono } from "hono";
import type { AppEnv } from "../env.js";

/**
 * Interactive API docs at /docs (Scalar), rendered from the live /openapi.json. The viewer's script is served by
 * tally itself from the installed package, and Scalar's web fonts and request proxy are switched off, so the page
 * works without internet access (on an air-gapped host, or behind a strict CSP). The 3.5 MB script is read on the
 * first /docs request only, never at start, and then kept.
 */
const SCRIPT_PATH = "/docs/scalar.js";

function standaloneScriptFile(): string {
  // The package exports only its module entry; its browser bundle sits beside it under dist/browser.
  const entry = createRequire(import.meta.url).resolve("@scalar/api-reference");
  return join(dirname(entry), "browser", "standalone.js");
}

export function docsRoutes() {
  let script: Promise<Buffer> | undefined;
  return new Hono<AppEnv>()
    .get(
      "/docs",
      Scalar({
        url: "/openapi.json",
        cdn: SCRIPT_PATH,
        pageTitle: "tally API",
        withDefaultFonts: false,
        hideClientButton: true,
        telemetry: false,
      }),
    )
    .get(SCRIPT_PATH, async (c) => {
      script ??= readFile(standaloneScriptFile()).catch((error: unknown) => {
        script = undefined;
        throw error;
      });
      const body = await script;
      return c.body(new Uint8Array(body), 200, {
        "content-type": "text/javascript; charset=utf-8",
        "cache-control": "public, max-age=86400",
      });
    });
}
