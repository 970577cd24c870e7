import { Counter, Registry } from "prom-client";

/**
 * Counters the ledger domain increments. They live in one registry per process (not per app) so that the domain
 * code can count without being handed anything; /metrics serves them together with the per-app metrics. Labels are
 * fixed, small sets: never an account id or anything a client chooses.
 */
export const ledgerRegistry = new Registry();

const outcome = ["outcome"] as const;

export const ledgerCounters = {
  posted_rows: new Counter({
    name: "tally_posted_rows_total",
    help: "Ledger rows written (replays excluded), by entry type",
    labelNames: ["type"] as const,
    registers: [ledgerRegistry],
  }),
  checkpoint_refreshes: new Counter({
    name: "tally_checkpoint_refreshes_total",
    help: "Balance checkpoint refreshes, by outcome (ok, failed)",
    labelNames: outcome,
    registers: [ledgerRegistry],
  }),
  rollups: new Counter({
    name: "tally_rollups_total",
    help: "History roll-ups of batched rows, by outcome (ok, skipped: another roll-up held the lock, failed)",
    labelNames: outcome,
    registers: [ledgerRegistry],
  }),
  crossing_evaluations: new Counter({
    name: "tally_crossing_evaluations_total",
    help: "Zero-crossing evaluations after credits and observations, by outcome (ok, failed)",
    labelNames: outcome,
    registers: [ledgerRegistry],
  }),
  events_emitted: new Counter({
    name: "tally_events_emitted_total",
    help: "Balance events emitted by this process, by type",
    labelNames: ["type"] as const,
    registers: [ledgerRegistry],
  }),
};

/** Counts the outcome of `work` on `counter`, passing its result or error through. */
export async function counted<T>(counter: Counter<"outcome">, work: () => Promise<T>, outcome_of: (result: T) => string = () => "ok"): Promise<T> {
  try {
    const result = await work();
    counter.inc({ outcome: outcome_of(result) });
    return result;
  } catch (error) {
    counter.inc({ outcome: "failed" });
    throw error;
  }
}
