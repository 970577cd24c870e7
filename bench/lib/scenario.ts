import os from "node:os";
import path from "node:path";
import type postgres from "postgres";
import type { ScenarioReport } from "./report.js";
import { startTally, type TallyProcess } from "./tally.js";

/** What the runner hands every scenario: a freshly migrated scratch database, a key, and a way to start tally. */
export interface ScenarioContext {
  scenario: string;
  quick: boolean;
  database_url: string;
  /** A small postgres.js pool on the scratch database, for setup, fills and checks. */
  sql: postgres.Sql;
  /** A service key holding every scope but admin, as a proxy, gateway and dashboard together would. */
  key: string;
  /** Starts tally on the scratch database; the runner stops it when the scenario ends, whatever happens. */
  startTally(options?: { env?: Record<string, string>; label?: string }): Promise<TallyProcess>;
  log(message: string): void;
}

export interface Scenario {
  name: string;
  title: string;
  run(context: ScenarioContext): Promise<ScenarioReport>;
}

/** CPU profiles are large and machine-specific: they go to the temporary directory, not into the repository. */
export const PROFILE_DIRECTORY = path.join(os.tmpdir(), "tally-bench-profiles");

export function tallyStarter(options: {
  scenario: string;
  database_url: string;
  profile: boolean;
}): ScenarioContext["startTally"] {
  let count = 0;
  return (start = {}) =>
    startTally({
      database_url: options.database_url,
      env: start.env,
      label: `${options.scenario}-${start.label ?? ++count}`,
      cpu_profile_dir: options.profile ? PROFILE_DIRECTORY : undefined,
    });
}

/** Seconds, by the scenario's mode. */
export function pick<T>(quick: boolean, full: T, quickValue: T): T {
  return quick ? quickValue : full;
}

export const sleep = (milliseconds: number) => new Promise<void>((resolve) => setTimeout(resolve, milliseconds));
