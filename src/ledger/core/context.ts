import type { Database } from "../../db/port.js";
import { EventHub } from "../events/event-hub.js";
import { FOLD_CHUNKS_MAX, FOLD_CHUNK_ROWS } from "./fold-chunk.js";
import { KnownAccounts } from "./known-accounts.js";

/** The narrow logging surface the domain needs; pino's logger satisfies it. */
export interface DomainLogger {
  info(object: Record<string, unknown>, message: string): void;
  warn(object: Record<string, unknown>, message: string): void;
}

export interface CheckpointPolicy {
  /** One write in this many refreshes its account's checkpoint. */
  refresh_every: number;
  /** A balance read that summed more delta rows than this refreshes the account. */
  delta_max: number;
  /** Uniform in [0, 1); injectable so a test can force or forbid refreshes. */
  random: () => number;
}

export const DEFAULT_NOTIFY_CHANNEL = "tally_balance_restored";

/** Everything the ledger functions need, passed in rather than imported, so tests build their own. */
export interface LedgerContext {
  database: Database;
  known_accounts: KnownAccounts;
  checkpoint_policy: CheckpointPolicy;
  logger: DomainLogger;
  events: { notify_channel: string; hub: EventHub };
  /** How folds (checkpoints, roll-ups, crossing credits) split their work; see fold-chunk.ts. */
  fold_policy: FoldPolicy;
}

export interface FoldPolicy {
  /** Rows per fold statement; each chunk commits on its own. */
  chunk_rows: number;
  /** Chunks per call, so one request never folds without end. */
  chunks_max: number;
}

export function createLedgerContext(options: {
  database: Database;
  logger: DomainLogger;
  refresh_every: number;
  delta_max: number;
  random?: () => number;
  notify_channel?: string;
  fold_chunk_rows?: number;
}): LedgerContext {
  return {
    database: options.database,
    known_accounts: new KnownAccounts(),
    checkpoint_policy: {
      refresh_every: options.refresh_every,
      delta_max: options.delta_max,
      random: options.random ?? Math.random,
    },
    logger: options.logger,
    events: { notify_channel: options.notify_channel ?? DEFAULT_NOTIFY_CHANNEL, hub: new EventHub() },
    fold_policy: { chunk_rows: options.fold_chunk_rows ?? FOLD_CHUNK_ROWS, chunks_max: FOLD_CHUNKS_MAX },
  };
}
