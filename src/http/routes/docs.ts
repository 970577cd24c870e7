import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { Scalar } from "@scalar/hono-api-reference";
import { Hono } from "hono";
import type { AppEnv } from "../env.js";

/**
 * Interactive API docs at /docs (Scalar), rendered from the live /openapi.json. The viewer's script is served by
 * tally itself, from the standalone bundle kept in vendor/scalar-api-reference/ (the npm package would add 209 MiB
 * of dependencies for this one file), and Scalar's web fonts and request proxy are switched off, so the page works
 * without internet access (on an air-gapped host, or behind a strict CSP). The 3.5 MB script is read on the first
 * /docs request only, never at start, and then kept.
 */
const SCRIPT_PATH = "/docs/scalar.js";
const STANDALONE_SCRIPT_FILE = fileURLToPath(new URL("../../../vendor/scalar-api-reference/standalone.js", import.meta.url));

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
      script ??= readFile(STANDALONE_SCRIPT_FILE).catch((error: unknown) => {
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
