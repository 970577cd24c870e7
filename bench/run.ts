import path from "node:path";
import { SCOPES } from "../src/auth/scopes.js";
import { setBenchDatabase, waitForQuiet } from "./lib/cpu.js";
import { connect, createBenchKey, DEFAULT_BENCH_DATABASE_URL, describeMachine, describeSource, MAX_CONNECTIONS_NEEDED, scratchDatabase, type Machine } from "./lib/database.js";
import { loadResults, renderScenario, renderSummary, RESULTS_DIRECTORY, saveResult, updateReadmeSummary, type ScenarioResult } from "./lib/report.js";
import { PROFILE_DIRECTORY, tallyStarter, type Scenario } from "./lib/scenario.js";
import { REPOSITORY_ROOT, stopAllChildren, takeTallyRecords } from "./lib/tally.js";
import { balanceRead } from "./scenarios/balance-read.js";
import { drift } from "./scenarios/drift.js";
import { history } from "./scenarios/history.js";
import { hotAccount } from "./scenarios/hot-account.js";
import { ingestBatch } from "./scenarios/ingest-batch.js";
import { ingestSingle } from "./scenarios/ingest-single.js";
import { notify } from "./scenarios/notify.js";
import { holds } from "./scenarios/holds.js";
import { lots } from "./scenarios/lots.js";
import { webhooks } from "./scenarios/webhooks.js";
import { autoTopup } from "./scenarios/auto-topup.js";

/**
 * `npm run bench [-- [--quick] [--keep] [--profile] [scenario …]]`
 *
 * Runs the scenarios in order against the scratch database (BENCH_DATABASE_URL, default tally_bench on the local
 * server), each on a freshly created and migrated database, prints each one's table, saves its JSON, and (for a
 * full run) regenerates the summary in bench/README.md from every saved JSON file. Exits non-zero if any scenario
 * failed: tally did not start, a request errored, or tally's balances drifted. Timing never fails a run.
 */

const SCENARIOS: Scenario[] = [ingestSingle, ingestBatch, hotAccount, balanceRead, drift, history, notify, holds, lots, webhooks, autoTopup];

const USAGE = `usage: npm run bench -- [--quick] [--keep] [--profile] [scenario ...]

  --quick     small, short runs (CI keeps the code alive with this; no timing is asserted);
              results go to bench/results/quick/ and the README summary is left alone
  --keep      keep the scratch database of the last scenario instead of dropping it
  --profile   write V8 CPU profiles of every tally child to ${PROFILE_DIRECTORY}/<scenario>-<n>/

scenarios: ${SCENARIOS.map((scenario) => scenario.name).join(", ")}
environment: BENCH_DATABASE_URL (default ${DEFAULT_BENCH_DATABASE_URL}); it is dropped and recreated`;

function write(text: string): void {
  process.stdout.write(`${text}\n`);
}

function parseArguments(argv: string[]) {
  const options = { quick: false, keep: false, profile: false, names: [] as string[] };
  for (const argument of argv) {
    if (argument === "--quick") options.quick = true;
    else if (argument === "--keep") options.keep = true;
    else if (argument === "--profile") options.profile = true;
    else if (argument === "--help" || argument === "-h") {
      write(USAGE);
      process.exit(0);
    } else if (argument.startsWith("-")) {
      process.stderr.write(`unknown option ${argument}\n${USAGE}\n`);
      process.exit(2);
    } else options.names.push(argument);
  }
  for (const name of options.names) {
    if (!SCENARIOS.some((scenario) => scenario.name === name)) {
      process.stderr.write(`unknown scenario ${name}\n${USAGE}\n`);
      process.exit(2);
    }
  }
  return options;
}

/** The largest CPU use by processes other than tally, the bench and PostgreSQL during any measurement of a report. */
function backgroundCores(details: unknown): number {
  let largest = 0;
  const visit = (value: unknown) => {
    if (value === null || typeof value !== "object") return;
    const cpu = (value as { cpu?: { other_cores?: unknown } }).cpu;
    if (cpu && typeof cpu.other_cores === "number") largest = Math.max(largest, cpu.other_cores);
    for (const inner of Object.values(value)) visit(inner);
  };
  visit(details);
  return largest;
}

/** Background load above this (in cores) during a measurement is worth a warning: two cores have no slack. */
const BACKGROUND_WARNING_CORES = 0.15;

async function runScenario(
  scenario: Scenario,
  options: { quick: boolean; profile: boolean; database: ReturnType<typeof scratchDatabase>; machine: () => Promise<Machine> },
): Promise<ScenarioResult> {
  const started_at = new Date().toISOString();
  const started = performance.now();
  const log = (message: string) => write(`[${scenario.name} ${((performance.now() - started) / 1000).toFixed(1)}s] ${message}`);
  let machine: Machine | undefined;
  const source = describeSource(REPOSITORY_ROOT);
  const base = () => ({
    scenario: scenario.name,
    title: scenario.title,
    quick: options.quick,
    source,
    started_at,
    duration_s: Math.round((performance.now() - started) / 100) / 10,
  });
  const sql = connect(options.database.url, 4);
  try {
    await options.database.reset();
    machine = await options.machine();
    if (!options.quick) {
      const quiet = await waitForQuiet(20_000);
      if (quiet.waited_ms > 1_500) log(`waited ${(quiet.waited_ms / 1000).toFixed(0)} s for the machine to fall quiet (background now ${quiet.background_cores} cores)`);
    }
    // Every scope but admin, so each route's own scope check is on the measured path.
    const key = await createBenchKey(options.database.url, SCOPES.filter((scope) => scope !== "admin"));
    const report = await scenario.run({
      scenario: scenario.name,
      quick: options.quick,
      database_url: options.database.url,
      sql,
      key,
      startTally: tallyStarter({ scenario: scenario.name, database_url: options.database.url, profile: options.profile }),
      log,
    });
    const fill_seconds = report.fills?.reduce((sum, fill) => sum + fill.insert_seconds + fill.vacuum_analyze_seconds, 0);
    if (options.profile) {
      report.notes = [...(report.notes ?? []), "tally ran under the V8 CPU profiler (--profile): its figures are lower than in an unprofiled run"];
    }
    const background = backgroundCores(report.details);
    if (background > BACKGROUND_WARNING_CORES) {
      report.notes = [
        ...(report.notes ?? []),
        `the machine was not quiet: up to ${background.toFixed(2)} cores went to other processes during a measurement; figures are disturbed`,
      ];
    }
    const tally_processes = takeTallyRecords();
    const peaks = tally_processes.map((record) => record.peak_rss_bytes);
    return {
      ...base(),
      machine,
      ...report,
      ...(peaks.length > 0 ? { tally_peak_rss_bytes: Math.max(...peaks), tally_processes } : {}),
      status: report.failure ? "failed" : (report.status ?? "ok"),
      ...(report.failure ? { error: report.failure } : {}),
      ...(fill_seconds === undefined ? {} : { fill_seconds: Math.round(fill_seconds * 10) / 10 }),
    };
  } catch (error) {
    log(`failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    takeTallyRecords();
    return {
      ...base(),
      machine: machine ?? (await options.machine().catch(() => undefined as unknown as Machine)),
      status: "failed",
      error: error instanceof Error ? error.message : String(error),
      parameters: {},
      figures: [],
      targets: [],
    };
  } finally {
    await stopAllChildren();
    await sql.end({ timeout: 5 });
  }
}

async function main(): Promise<void> {
  const options = parseArguments(process.argv.slice(2));
  const database = scratchDatabase(process.env.BENCH_DATABASE_URL?.trim() || DEFAULT_BENCH_DATABASE_URL);
  setBenchDatabase(database.name);
  const selected = options.names.length === 0 ? SCENARIOS : SCENARIOS.filter((scenario) => options.names.includes(scenario.name));

  let interrupted = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (interrupted) process.exit(130);
    interrupted = true;
    process.stderr.write(`\n${signal}: stopping tally and dropping ${database.name}\n`);
    void stopAllChildren()
      .then(() => (options.keep ? undefined : database.drop()))
      .finally(() => process.exit(130));
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);

  let cachedMachine: Machine | undefined;
  const machine = async () => {
    if (cachedMachine) return cachedMachine;
    const sql = connect(database.url, 1);
    try {
      cachedMachine = await describeMachine(sql);
    } finally {
      await sql.end({ timeout: 5 });
    }
    return cachedMachine;
  };

  const max_connections = await database.maxConnections();
  if (max_connections < MAX_CONNECTIONS_NEEDED) {
    process.stderr.write(`bench: the server's max_connections is ${max_connections}; the bench opens up to about 95 connections at once and needs ${MAX_CONNECTIONS_NEEDED} (PostgreSQL's default)\n`);
    process.exit(2);
  }

  const runStarted = performance.now();
  write(`tally bench: ${selected.map((scenario) => scenario.name).join(", ")}${options.quick ? " (quick)" : ""} on ${database.name}`);
  const results: ScenarioResult[] = [];
  try {
    for (const scenario of selected) {
      const result = await runScenario(scenario, { quick: options.quick, profile: options.profile, database, machine });
      results.push(result);
      const file = saveResult(result);
      write(renderScenario(result));
      write(`saved ${path.relative(REPOSITORY_ROOT, file)} (${result.duration_s} s)`);
    }
  } finally {
    if (!options.keep) await database.drop().catch((error: unknown) => process.stderr.write(`could not drop ${database.name}: ${String(error)}\n`));
  }

  if (!options.quick) {
    const order = SCENARIOS.map((scenario) => scenario.name);
    updateReadmeSummary(path.join(REPOSITORY_ROOT, "bench", "README.md"), renderSummary(loadResults(RESULTS_DIRECTORY, order)));
    write("\nbench/README.md summary regenerated from bench/results/*.json");
  }
  if (options.profile) write(`CPU profiles of tally: ${PROFILE_DIRECTORY}/ (open in Chrome DevTools or speedscope)`);
  const failed = results.filter((result) => result.status === "failed");
  write(`\n${results.length} scenario(s) in ${((performance.now() - runStarted) / 1000).toFixed(1)} s: ` +
    `${results.filter((result) => result.status === "ok").length} ok, ${results.filter((result) => result.status === "skipped").length} skipped, ${failed.length} failed`);
  if (failed.length > 0) {
    for (const result of failed) process.stderr.write(`FAILED ${result.scenario}: ${result.error}\n`);
    process.exitCode = 1;
  }
}

// The run ends here even if a failed scenario left a pool or a timer behind: an open handle must never keep CI
// waiting for a process that has finished its work.
main().then(() => process.exit()).catch(async (error: unknown) => {
  process.stderr.write(`bench: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  await stopAllChildren().catch(() => {});
  process.exit(1);
});
