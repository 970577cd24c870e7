import { execFile } from "node:child_process";
import path from "node:path";
import { promisify } from "node:util";

const ROOT = path.resolve(import.meta.dirname, "../..");

/** Runs `bin/tally.js` with `args` and only PATH plus `environment`; a non-zero exit is returned, not thrown. */
export async function tally(args: string[], environment: Record<string, string> = {}) {
  return promisify(execFile)(process.execPath, ["bin/tally.js", ...args], { cwd: ROOT, env: { PATH: process.env.PATH, ...environment } })
    .then(({ stdout, stderr }) => ({ code: 0, stdout, stderr }))
    .catch((error: { code: number; stdout: string; stderr: string }) => ({ code: error.code, stdout: error.stdout, stderr: error.stderr }));
}
