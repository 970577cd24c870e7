import type { Queryable } from "../../db/port.js";
import type { LedgerContext } from "../core/context.js";
import { counted, ledgerCounters } from "../../metrics/ledger-counters.js";
import { APPLY_CHUNK_SQL, CHUNK_READ_WORK_MEM_SQL, PLAN_CHUNK_SQL, READ_CHUNK_SQL } from "./rollup-sql.js";

/** Advisory-lock namespace for per-account roll-ups. */
const ROLLUP_LOCK_NAMESPACE = 4;

/**
 * Chunks read at once, each on its own connection. Reading (the index fetch and the hash aggregate) is nearly all
 * of a chunk's cost and needs no lock, so an account far behind rolls up on two cores; applying stays in order.
 */
export const ROLLUP_READS_IN_FLIGHT = 2;

/**
 * Folds an account's finished batched rows into batch_aggregates and advances its roll-up boundary, without ever
 * touching a ledger row, in chunks of about `chunk_rows` rows (fold-chunk.ts). Each chunk `[start, end)` is
 * planned at or below the horizon of its planning statement (every transaction below `end` has finished, so its
 * rows can never change), read without a lock (rollup-sql.ts), and applied in its own transaction under the
 * account's try-lock, only if the boundary is still `start`: the aggregates take the chunk and the boundary moves
 * to `end` together. So no row is folded twice or skipped, an account however long unread catches up in bounded,
 * committed statements, and an interrupted roll-up keeps its progress. Chunks are planned ahead and read
 * ROLLUP_READS_IN_FLIGHT at a time, but applied one after another, in order.
 *
 * Roll-ups of one account are serialized by that transaction-level try-lock: the loser does not wait, it simply
 * returns, and its reader groups the not-yet-folded rows on the fly (history.ts), so every committed row appears
 * exactly once either way.
 *
 * A chunk also carries the balance checkpoint forward when the checkpoint's boundary lies inside it, as it does on
 * an account never read (both start at 0): one pass over the rows serves both folds (APPLY_CHUNK_SQL).
 */
export async function rollUpBatches(context: LedgerContext, account_id: string): Promise<boolean> {
  return counted(ledgerCounters.rollups, () => rollUp(context, account_id), (caught_up) => (caught_up ? "ok" : "skipped"));
}

interface ChunkPlan {
  start: string;
  end: string;
  caught_up: boolean;
  has_rows: boolean;
  checkpoint_boundary: string;
}

interface PlannedChunk {
  start: string;
  end: string;
  caught_up: boolean;
  has_rows: boolean;
  /** Where the checkpoint's boundary is expected when this chunk is applied, if inside it: the chunk carries it. */
  checkpoint_from: string | null;
  read: Promise<ChunkGroup[]>;
}

interface ChunkGroup {
  batch_id: string | null;
  amount_total: string;
  delta_total: string;
  row_count: string;
  first_seq: string;
  last_seq: string;
  first_at: string;
  last_at: string;
  max_xid: string;
  checkpoint_delta: string;
}

async function rollUp(context: LedgerContext, account_id: string): Promise<boolean> {
  const { chunk_rows, chunks_max } = context.fold_policy;
  // Where the checkpoint will be when the next planned chunk is applied: where the first plan found it, or the
  // end of the last chunk planned to carry it. Plans run one after another (each starts where the previous ends).
  let checkpoint_boundary: bigint | null = null;
  const planAfter = async (previous: Promise<PlannedChunk | null> | undefined): Promise<PlannedChunk | null> => {
    const before = previous === undefined ? undefined : await previous;
    if (before === null || before?.caught_up) return null;
    const [plan]: ChunkPlan[] = await context.database.query<ChunkPlan>(PLAN_CHUNK_SQL, [account_id, before?.end ?? null, chunk_rows]);
    const { start, end, caught_up, has_rows }: ChunkPlan = plan!;
    checkpoint_boundary ??= BigInt(plan!.checkpoint_boundary);
    const carries = BigInt(start) <= checkpoint_boundary && checkpoint_boundary < BigInt(end);
    const checkpoint_from = carries ? checkpoint_boundary.toString() : null;
    if (carries) checkpoint_boundary = BigInt(end);
    const read = has_rows ? readChunk(context, account_id, start, end, checkpoint_from ?? start) : Promise.resolve([]);
    // Observed when its turn comes, or discarded with the roll-up: never an unhandled rejection.
    read.catch(() => undefined);
    return { start, end, caught_up, has_rows, checkpoint_from, read };
  };

  // Planned chunks, oldest first, each read as soon as it is planned. While one is applied, the next ones are read.
  const queue: Promise<PlannedChunk | null>[] = [];
  let last: Promise<PlannedChunk | null> | undefined;
  let planned = 0;
  try {
    for (;;) {
      while (queue.length <= ROLLUP_READS_IN_FLIGHT && planned < chunks_max) {
        last = planAfter(last);
        last.catch(() => undefined);
        queue.push(last);
        planned++;
      }
      const next = queue.shift();
      if (next === undefined) return false; // chunks_max chunks applied, the horizon not reached
      const chunk = await next;
      // Nothing below the horizon left to fold: the boundary may stay where it is, no row can appear below the
      // horizon. (A chunk that is not the last can be empty too, from 0 to the first transaction: it is applied.)
      if (chunk === null || (chunk.caught_up && !chunk.has_rows)) return true;
      if (!(await applyChunk(context, account_id, chunk, await chunk.read))) return false; // another roll-up holds the lock or moved the boundary
      if (chunk.caught_up) return true;
    }
  } finally {
    // Plans and reads already started finish before the roll-up returns; what they found is discarded.
    await Promise.allSettled(queue.map(async (planning) => (await planning)?.read));
  }
}

async function readChunk(context: LedgerContext, account_id: string, start: string, end: string, checkpoint_from: string) {
  return context.database.transaction(async (transaction: Queryable) => {
    await transaction.query(CHUNK_READ_WORK_MEM_SQL);
    return transaction.query<ChunkGroup>(READ_CHUNK_SQL, [account_id, start, end, checkpoint_from]);
  });
}

async function applyChunk(context: LedgerContext, account_id: string, chunk: PlannedChunk, groups: ChunkGroup[]): Promise<boolean> {
  const batches = groups.filter((group) => group.batch_id !== null);
  const column = (name: keyof ChunkGroup) => batches.map((group) => group[name]);
  return context.database.transaction(async (transaction: Queryable) => {
    const [lock] = await transaction.query<{ locked: boolean }>(
      "SELECT pg_try_advisory_xact_lock($1::int, hashtext($2)) AS locked",
      [ROLLUP_LOCK_NAMESPACE, account_id],
    );
    if (!lock?.locked) return false;
    // Its own statement, after the lock: its snapshot sees the boundary the previous roll-up committed.
    const [row] = await transaction.query<{ applied: boolean }>(APPLY_CHUNK_SQL, [
      account_id,
      chunk.start,
      chunk.end,
      column("batch_id"),
      column("amount_total"),
      column("delta_total"),
      column("row_count"),
      column("first_seq"),
      column("last_seq"),
      column("first_at"),
      column("last_at"),
      column("max_xid"),
      groups[0]?.checkpoint_delta ?? "0",
      chunk.checkpoint_from,
    ]);
    return row!.applied;
  });
}
