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

/** Wall-clock time, injectable so that tests move time (lot expiry, renewals) instead of sleeping. */
export interface Clock {
  now(): Date;
}

export const SYSTEM_CLOCK: Clock = { now: () => new Date() };

/** Everything the ledger functions need, passed in rather than imported, so tests build their own. */
export interface LedgerContext {
  database: Database;
  known_accounts: KnownAccounts;
  checkpoint_policy: CheckpointPolicy;
  logger: DomainLogger;
  events: { notify_channel: string; hub: EventHub };
  /** The ledger's clock: holds are granted, expire and close by it; lots expire by it. `now` reads it. */
  clock: Clock;
  now: () => Date;
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
  /** Either a clock or a bare `now`; both default to the system clock. */
  clock?: Clock;
  now?: () => Date;
  fold_chunk_rows?: number;
}): LedgerContext {
  const now = options.now;
  const clock: Clock = options.clock ?? (now === undefined ? SYSTEM_CLOCK : { now: () => now() });
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
    clock,
    now: () => clock.now(),
    fold_policy: { chunk_rows: options.fold_chunk_rows ?? FOLD_CHUNK_ROWS, chunks_max: FOLD_CHUNKS_MAX },
  };
}
