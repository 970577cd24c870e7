import { mkdirSync, readFileSync, readdirSync, writeFileSync, renameSync, existsSync } from "node:fs";
import path from "node:path";
import type { Machine, Source } from "./database.js";
import { REPOSITORY_ROOT, type TallyRecord } from "./tally.js";

/**
 * What a scenario reports, and how it is printed, saved and summarised. A figure is one measured quantity for
 * tally and, where there is one, for the baseline measured in the same run; `ratio` is always tally ÷ baseline, and
 * `better` says which direction is good, so a latency ratio of 0.1 and a throughput ratio of 10 are both wins.
 */

export interface Figure {
  figure: string;
  unit: string;
  tally: number | null;
  baseline: number | null;
  ratio: number | null;
  better?: "higher" | "lower";
  /** Shown in the README summary. */
  headline?: boolean;
}

export interface Target {
  target: string;
  measured: string;
  met: boolean;
}

export interface Fill {
  what: string;
  rows: number;
  insert_seconds: number;
  vacuum_analyze_seconds: number;
}

export interface ScenarioReport {
  parameters: Record<string, unknown>;
  figures: Figure[];
  targets: Target[];
  fills?: Fill[];
  tally_peak_rss_bytes?: number;
  notes?: string[];
  /** Per-measurement detail: every percentile, CPU split, row counts. */
  details?: Record<string, unknown>;
  status?: "ok" | "skipped";
  skipped_reason?: string;
  /** A correctness failure found while measuring (tally's balances drifted): the run fails, the figures are kept. */
  failure?: string;
}

export interface ScenarioResult extends Omit<ScenarioReport, "status" | "failure"> {
  scenario: string;
  title: string;
  quick: boolean;
  status: "ok" | "skipped" | "failed";
  error?: string;
  started_at: string;
  duration_s: number;
  machine: Machine;
  source?: Source;
  fill_seconds?: number;
  /** Every tally child the scenario started: its settings, its RSS once ready and its peak RSS. */
  tally_processes?: TallyRecord[];
}

export function figure(
  name: string,
  unit: string,
  tally: number | null,
  baseline: number | null,
  options: { better?: "higher" | "lower"; headline?: boolean; compare?: boolean } = {},
): Figure {
  const { compare = true, ...rest } = options;
  const ratio = compare && tally !== null && baseline !== null && baseline !== 0 && Number.isFinite(tally) && Number.isFinite(baseline) ? tally / baseline : null;
  return { figure: name, unit, tally, baseline, ratio, ...rest };
}

export function target(description: string, measured: string, met: boolean): Target {
  return { target: description, measured, met };
}

const MIB = 1024 * 1024;

export function formatValue(value: number | null, unit: string): string {
  if (value === null || Number.isNaN(value)) return "–";
  switch (unit) {
    case "rows/s":
    case "requests/s":
    case "rows":
    case "requests":
    case "accounts":
      return Math.round(value).toLocaleString("en-US");
    case "credits":
      return value.toFixed(6);
    case "ms":
      return value < 1 ? value.toFixed(3) : value < 100 ? value.toFixed(2) : value.toFixed(0);
    case "bytes":
      return `${(value / MIB).toFixed(1)} MiB`;
    case "%":
      return `${value.toFixed(4)} %`;
    case "s":
      return value.toFixed(1);
    case "×":
      return `${value.toFixed(2)}×`;
    default:
      return Number.isInteger(value) ? value.toLocaleString("en-US") : value.toPrecision(4);
  }
}

function formatUnit(unit: string): string {
  return unit === "bytes" || unit === "%" || unit === "×" || unit === "" ? "" : ` (${unit})`;
}

export function formatRatio(ratio: number | null): string {
  if (ratio === null) return "–";
  return ratio >= 100 ? `${ratio.toFixed(0)}×` : ratio >= 10 ? `${ratio.toFixed(1)}×` : `${ratio.toFixed(2)}×`;
}

function table(header: string[], rows: string[][]): string {
  const widths = header.map((cell, column) => Math.max(cell.length, ...rows.map((row) => row[column]!.length)));
  const line = (cells: string[]) => cells.map((cell, column) => (column === 0 ? cell.padEnd(widths[column]!) : cell.padStart(widths[column]!))).join("  ");
  return [line(header), widths.map((width) => "-".repeat(width)).join("  "), ...rows.map(line)].join("\n");
}

/** The console table of one scenario. */
export function renderScenario(result: ScenarioResult): string {
  const lines = [`\n== ${result.scenario}: ${result.title}${result.quick ? " (quick)" : ""}`];
  if (result.status === "skipped") {
    lines.push(`skipped: ${result.skipped_reason}`);
    return lines.join("\n");
  }
  if (result.status === "failed" && result.figures.length === 0) {
    lines.push(`FAILED: ${result.error}`);
    return lines.join("\n");
  }
  for (const fill of result.fills ?? []) {
    lines.push(
      `fill: ${fill.what}: ${fill.rows.toLocaleString("en-US")} rows in ${fill.insert_seconds.toFixed(1)} s, VACUUM ANALYZE ${fill.vacuum_analyze_seconds.toFixed(1)} s`,
    );
  }
  lines.push(
    table(
      ["figure", "tally", "baseline", "ratio"],
      result.figures.map((entry) => [
        `${entry.figure}${formatUnit(entry.unit)}`,
        formatValue(entry.tally, entry.unit),
        formatValue(entry.baseline, entry.unit),
        formatRatio(entry.ratio),
      ]),
    ),
  );
  for (const entry of result.targets) lines.push(`target ${entry.met ? "MET    " : "NOT MET"}  ${entry.target}: ${entry.measured}`);
  for (const note of result.notes ?? []) lines.push(`note: ${note}`);
  if (result.status === "failed") lines.push(`FAILED: ${result.error}`);
  return lines.join("\n");
}

export const RESULTS_DIRECTORY = path.join(REPOSITORY_ROOT, "bench", "results");

/** Full runs write bench/results/<scenario>.json; quick runs write bench/results/quick/, leaving the full figures alone. */
export function resultPath(scenario: string, quick: boolean): string {
  return path.join(RESULTS_DIRECTORY, ...(quick ? ["quick"] : []), `${scenario}.json`);
}

export function saveResult(result: ScenarioResult): string {
  const file = resultPath(result.scenario, result.quick);
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(`${file}.tmp`, `${JSON.stringify(result, null, 2)}\n`);
  renameSync(`${file}.tmp`, file);
  return file;
}

export function loadResults(directory: string, order: readonly string[]): ScenarioResult[] {
  if (!existsSync(directory)) return [];
  const results = readdirSync(directory)
    .filter((name) => name.endsWith(".json"))
    .map((name) => JSON.parse(readFileSync(path.join(directory, name), "utf8")) as ScenarioResult);
  const rank = (name: string) => (order.includes(name) ? order.indexOf(name) : order.length);
  return results.sort((left, right) => rank(left.scenario) - rank(right.scenario));
}

const SUMMARY_START = "<!-- bench-summary:start -->";
const SUMMARY_END = "<!-- bench-summary:end -->";

function escapeCell(text: string): string {
  return text.replaceAll("|", "\\|");
}

/** Whether the kernel had huge pages reserved when the result was taken (results taken before commit 1786c4c do not say: none). */
function hugePagesReserved(machine: Machine): boolean {
  return machine.huge_pages !== undefined && !machine.huge_pages.startsWith("0 ");
}

/** The README summary: headline figures and every target, from the saved JSON files. */
export function renderSummary(results: readonly ScenarioResult[]): string {
  if (results.length === 0) return "No results yet: run `npm run bench`.";
  const lines: string[] = [];
  const runs = [...new Set(results.map((result) => result.started_at.slice(0, 10)))];
  const commits = [...new Set(results.map((result) => result.source?.commit?.slice(0, 7) ?? "unknown"))];
  const machine = results[0]!.machine;
  // Scenarios re-run in a later session may have run on another CPU: name each, so no absolute figure is compared
  // across machines by mistake.
  const models = [...new Set(results.map((result) => result.machine.cpu_model))];
  const cpu =
    models.length === 1
      ? machine.cpu_model
      : models
          .map((model) => `${model}: ${results.filter((result) => result.machine.cpu_model === model).map((result) => `\`${result.scenario}\``).join(", ")}`)
          .join("; ");
  // Huge pages change what a fresh PostgreSQL backend costs (README "Huge pages"): say which results had them.
  const withHugePages = results.filter((result) => hugePagesReserved(result.machine)).map((result) => `\`${result.scenario}\``);
  const hugePages =
    withHugePages.length === results.length ? "with huge pages"
    : withHugePages.length === 0 ? "without huge pages"
    : `with huge pages for ${withHugePages.join(", ")} only`;
  lines.push(
    `Generated from \`bench/results/*.json\` (runs of ${runs.join(", ")}, tally at ${commits.join(", ")}) on ${machine.cores} cores (${cpu}), ` +
      `${(machine.memory_bytes / 1024 ** 3).toFixed(1)} GiB, PostgreSQL ${machine.postgres_version} (${hugePages}), Node.js ${machine.node_version}. ` +
      "Ratios are tally ÷ baseline, measured side by side in the same run.",
    "",
    "| Scenario | Figure | tally | baseline | ratio |",
    "|---|---|---:|---:|---:|",
  );
  for (const result of results) {
    const name = `\`${result.scenario}\`${result.quick ? " (quick)" : ""}`;
    if (result.status !== "ok") {
      lines.push(`| ${name} | ${escapeCell(result.status === "skipped" ? `skipped: ${result.skipped_reason ?? ""}` : `failed: ${(result.error ?? "").slice(0, 200)}`)} | | | |`);
      continue;
    }
    for (const entry of result.figures.filter((candidate) => candidate.headline)) {
      lines.push(
        `| ${name} | ${escapeCell(entry.figure)}${formatUnit(entry.unit)} | ${formatValue(entry.tally, entry.unit)} | ${formatValue(entry.baseline, entry.unit)} | ${formatRatio(entry.ratio)} |`,
      );
    }
    if (result.tally_peak_rss_bytes !== undefined) {
      lines.push(`| ${name} | tally peak RSS | ${formatValue(result.tally_peak_rss_bytes, "bytes")} | | |`);
    }
  }
  const disturbed = results.filter((result) => (result.notes ?? []).some((note) => note.startsWith("the machine was not quiet")));
  if (disturbed.length > 0) {
    lines.push(
      "",
      `Background load from other processes disturbed ${disturbed.map((result) => `\`${result.scenario}\``).join(", ")} (see each JSON's \`notes\` and the CPU split in \`details\`).`,
    );
  }
  lines.push("", "| Scenario | Target | Measured | Met |", "|---|---|---|:---:|");
  for (const result of results) {
    for (const entry of result.targets) {
      lines.push(`| \`${result.scenario}\` | ${escapeCell(entry.target)} | ${escapeCell(entry.measured)} | ${entry.met ? "yes" : "**no**"} |`);
    }
  }
  return lines.join("\n");
}

/** Rewrites the summary between the markers of bench/README.md; the rest of the file is left as written. */
export function updateReadmeSummary(readme_path: string, summary: string): void {
  const text = readFileSync(readme_path, "utf8");
  const start = text.indexOf(SUMMARY_START);
  const end = text.indexOf(SUMMARY_END);
  if (start < 0 || end < start) throw new Error(`${readme_path} has no ${SUMMARY_START} … ${SUMMARY_END} markers`);
  writeFileSync(readme_path, `${text.slice(0, start + SUMMARY_START.length)}\n${summary}\n${text.slice(end)}`);
}
