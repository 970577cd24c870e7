import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { inject } from "vitest";
import { freshDatabase, startTally, type TallyProcess } from "../support/tally-process.js";
import { maskHeader, normalizeBody, parseOutput } from "./compare.js";
import { parseExamples, type Example } from "./examples.js";

/**
 * README.md as a tested artefact: every `$ curl` example runs, in order, with the real curl, against one real tally
 * on a fresh database, and what it prints is compared with what the README shows (docs/readme-examples.md).
 */

const run = promisify(execFile);
const ROOT = path.resolve(import.meta.dirname, "../..");
const README = await readFile(path.join(ROOT, "README.md"), "utf8");
const EXAMPLES = parseExamples(README);
/** The admin key of the README's quick start, which its examples use. */
const ADMIN_KEY = /TALLY_ADMIN_KEY=(\S+)/.exec(README)?.[1] ?? "";
/** The Stripe signing secret the README's Stripe examples sign with (its `export STRIPE_WEBHOOK_SECRET=` line). */
const STRIPE_WEBHOOK_SECRET = /export STRIPE_WEBHOOK_SECRET=(\S+)/.exec(README)?.[1] ?? "";
/** How long a `curl -N` stream is read before the runner interrupts it, as the reader would with ^C. */
const STREAM_READ_MS = 1_500;

let tally: TallyProcess;
let dropDatabase: () => Promise<void>;
let scratch: string;
/** The shell variables the examples' `export` lines set, passed to every later command. */
const variables: Record<string, string> = {};

beforeAll(async () => {
  const database = await freshDatabase(inject("databaseUrl"));
  dropDatabase = database.drop;
  // The renewal scheduler is off so that the plans section can show a renewal due, previewed, then run by hand;
  // otherwise a scheduler tick could grant it between two examples.
  tally = await startTally({ DATABASE_URL: database.url, TALLY_ADMIN_KEY: ADMIN_KEY, STRIPE_WEBHOOK_SECRET, RENEWAL_INTERVAL_MS: "0" });
  scratch = await mkdtemp(path.join(tmpdir(), "tally-readme-"));
});

afterAll(async () => {
  await tally?.stop();
  await dropDatabase?.();
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

/** The command as written, pointed at the test server, with the response headers saved aside for the status. */
function runnable(example: Example, header_file: string): string {
  const limit = example.stream ? `--max-time ${STREAM_READ_MS / 1000}` : "--max-time 20";
  return example.command
    .replace(/(https?:\/\/)?localhost:8080/g, tally.url)
    .replace(/\bcurl\b/, `curl -D ${header_file} ${limit}`);
}

async function execute(example: Example, index: number) {
  const header_file = path.join(scratch, `headers-${index}`);
  let stdout: string;
  try {
    ({ stdout } = await run("bash", ["-c", runnable(example, header_file)], {
      env: { PATH: process.env.PATH, ...variables },
    }));
  } catch (error) {
    // curl exits 28 when --max-time interrupts a stream: that is how a stream example ends.
    const failed = error as { code?: number; stdout?: string; stderr?: string };
    if (!(example.stream && failed.code === 28)) throw new Error(`curl failed (exit ${failed.code}): ${failed.stderr}`);
    stdout = failed.stdout ?? "";
  }
  const headers = (await readFile(header_file, "utf8").catch(() => "")).split(/\r?\n\r?\n/)[0] ?? "";
  const status = Number(/^HTTP\/[0-9.]+ (\d{3})/.exec(headers)?.[1]);
  return { status, output: stdout.replace(/\r\n/g, "\n") };
}

function describeExample(example: Example): string {
  return `README.md:${example.line} (${example.section}): ${example.command.split("\n")[0]}`;
}

describe("README.md examples", () => {
  it("has curl examples to run, and the admin key of the quick start", () => {
    expect(EXAMPLES.length, "no `$ curl` example found: see docs/readme-examples.md for the format").toBeGreaterThan(10);
    expect(ADMIN_KEY.length).toBeGreaterThanOrEqual(32);
  });

  EXAMPLES.forEach((example, index) => {
    if (example.kind === "export") {
      it(describeExample(example), async () => {
        const name = /^export ([A-Za-z_][A-Za-z0-9_]*)=/.exec(example.command)![1]!;
        // An export may ask the server (`$(curl … | jq …)`): pointed at the test server like any curl.
        const command = example.command.replace(/(https?:\/\/)?localhost:8080/g, tally.url);
        const { stdout } = await run("bash", ["-c", `${command}; printf %s "$${name}"`], { env: { PATH: process.env.PATH, ...variables } });
        variables[name] = stdout;
        expect(stdout, `${describeExample(example)}: the variable is empty`).not.toBe("");
      });
      return;
    }
    // Only curl examples run; a different command in an example block is listed as skipped, never silently dropped.
    it.skipIf(example.skip !== undefined || example.kind === "other")(describeExample(example), async () => {
      const { status, output } = await execute(example, index);
      const expected = parseOutput(example.expected);
      const where = `${describeExample(example)}\nthe README shows:\n${example.expected}\ncurl printed:\n${output}\n`;
      if (expected.status !== undefined) expect(status, `${where}status`).toBe(expected.status);
      else expect(status, `${where}the example shows no status line, so it must succeed`).toBeLessThan(400 + (/"status":\s*[45]\d\d/.test(example.expected) ? 200 : 0));
      const actual = parseOutput(output);
      for (const [name, value] of expected.headers) {
        expect(maskHeader(name, actual.headers.get(name) ?? "(missing)"), `${where}header ${name}`).toBe(maskHeader(name, value));
      }
      expect(normalizeBody(actual.body), `${where}body (ids, times, request ids and cursors masked)`).toEqual(normalizeBody(expected.body));
    });
  });
});
