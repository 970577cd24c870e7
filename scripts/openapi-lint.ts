import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { fileURLToPath } from "node:url";

/**
 * Lints the OpenAPI document tally serves with `@redocly/cli lint` and its recommended rules (redocly.yaml), and
 * fails on any error or warning except the ones listed below, each with the reason it cannot be fixed in the
 * document. `npm run openapi:lint` and .ci/run use it; test/integration/openapi-quality.test.ts too.
 */

const ACCEPTED: { rule: string; pointer: string; reason: string }[] = [
  { rule: "info-license", pointer: "#/info", reason: "tally has no licence yet; its owner has to choose one" },
  { rule: "operation-4xx-response", pointer: "#/paths/~1health/get/responses", reason: "a liveness probe has no client error" },
  { rule: "operation-4xx-response", pointer: "#/paths/~1ready/get/responses", reason: "a readiness probe has no client error (it answers 200 or 503)" },
];

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

interface Problem {
  ruleId: string;
  severity: string;
  message: string;
  location: { pointer: string }[];
}

/** The problems redocly reports for the document in `file`, minus the accepted ones, one line each. */
export async function lintOpenApi(file: string): Promise<string[]> {
  const redocly = path.join(ROOT, "node_modules", ".bin", "redocly");
  const { stdout } = await promisify(execFile)(redocly, ["lint", file, "--format=json", `--config=${path.join(ROOT, "redocly.yaml")}`], {
    cwd: ROOT,
    maxBuffer: 16 * 1024 * 1024,
    env: { ...process.env, REDOCLY_TELEMETRY: "off", REDOCLY_SUPPRESS_UPDATE_NOTICE: "true" },
  }).catch((error: { stdout?: string }) => ({ stdout: error.stdout ?? "" }));
  const report = JSON.parse(stdout.slice(stdout.indexOf("{"))) as { problems: Problem[] };
  return report.problems
    .filter((problem) => !ACCEPTED.some((accepted) => accepted.rule === problem.ruleId && accepted.pointer === problem.location[0]?.pointer))
    .map((problem) => `${problem.severity} ${problem.ruleId} at ${problem.location[0]?.pointer}: ${problem.message}`);
}

async function main(): Promise<void> {
  const { offlineOpenApiDocument } = await import("../src/cli/openapi.js");
  const directory = await mkdtemp(path.join(tmpdir(), "tally-openapi-"));
  try {
    const file = path.join(directory, "openapi.json");
    await writeFile(file, JSON.stringify(await offlineOpenApiDocument(), null, 2));
    const problems = await lintOpenApi(file);
    for (const problem of problems) process.stderr.write(`${problem}\n`);
    process.stdout.write(`openapi lint: ${problems.length} problem(s) (recommended rules; ${ACCEPTED.length} accepted, see scripts/openapi-lint.ts)\n`);
    if (problems.length > 0) process.exitCode = 1;
  } finally {
    await rm(directory, { recursive: true, force: true });
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await main();
