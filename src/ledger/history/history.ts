import type { EntryType } from "../../db/schema.js";
import { canonicalNumeric, formatNanos, numericToNanos } from "../core/amount.js";
import type { LedgerContext } from "../core/context.js";
import { refreshCheckpoint, refreshQuietly } from "../balances/checkpoints.js";
import {
  BALANCE_AS_OF_SQL,
  FAR_BEHIND_SQL,
  GROUPED_PAGE_SQL,
  UNGROUPED_PAGE_SQL,
  gapSumsSql,
  groupedTotalsSql,
  ungroupedTotalsSql,
} from "./history-sql.js";
import { rollUpBatches } from "./rollup.js";
import { withLinks } from "../corrections/links.js";
import { BIGINT_MAX } from "../../db/keyset-bounds.js";

export const HISTORY_PAGE_SIZE_MAX = 500;
export const HISTORY_OFFSET_MAX = 10_000;
/**
 * A snapshot names the transactions in flight when it was taken. With unusually many in flight, a walk falls back
 * to "every transaction below the oldest one in flight", a slightly older view, to keep cursors small.
 */
const SNAPSHOT_TEXT_LENGTH_MAX = 1200;

export interface HistoryFilters {
  types: EntryType[] | undefined;
  search: string | undefined;
  from: string | undefined;
  to: string | undefined;
}

export interface HistoryItem {
  /** The entry id, or for a batch item the batch id. */
  id: string;
  type: EntryType;
  amount: string;
  delta: string;
  idempotency_key: string | null;
  batch_id: string | null;
  /** Rows this item stands for: 1 for an entry, the row count for a batch. */
  batch_count: number;
  description: string | null;
  metadata: Record<string, unknown> | null;
  created_at: string;
  first_created_at: string;
  last_created_at: string;
  /** The account balance right after this item (after a batch's last row); null when a type or search filter is set. */
  balance_after: string | null;
  /** Present only on corrections: what a refund or reversal corrects, and a transfer leg's counterpart and transfer. */
  original_entry_id?: string;
  counterpart_entry_id?: string;
  transfer_id?: string;
  /** Present only on a hold's capture: the hold it closed. */
  hold_id?: string;
  /**
   * Present only on priced usage listed as an entry (a batch item stands for rows that may differ): the meter and
   * quantities posted and the price version the amount came from, so every charge can be explained later.
   */
  meter?: string;
  quantities?: Record<string, number>;
  price_version?: number;
}

export interface HistoryPosition {
  snapshot: string;
  /** Items strictly older than this position come next. */
  position: string;
  /**
   * What the walk already knows and cannot change while it is pinned to its snapshot: the item count, and the
   * balance after every item below `position` (in listing order, whether or not a filter lists them; null when
   * balances are omitted). Carrying them makes every later page cost O(page). An absent value is recomputed.
   * They are trusted because a cursor is signed (src/http/cursor.ts).
   */
  total?: number;
  balance_below?: string | null;
}

export interface HistoryPage {
  items: HistoryItem[];
  total: number;
  page_start_balance: string | null;
  snapshot: string;
  /** Where the next page starts, or undefined on the last page. */
  next: HistoryPosition | undefined;
}

interface ItemRow {
  position: string;
  id: string;
  type: EntryType;
  amount: string;
  delta: string;
  idempotency_key: string | null;
  batch_id: string | null;
  description: string | null;
  metadata: Record<string, unknown> | null;
  row_count: string;
  first_at: Date | string;
  last_at: Date | string;
  hold_id: string | null;
  meter: string | null;
  quantities: Record<string, number> | null;
  price_version: number | null;
}

/** `%`, `_` and `\` in a search are literal characters, never wildcards. */
export function likePattern(search: string): string {
  return `%${search.replace(/[\\%_]/g, (character) => `\\${character}`)}%`;
}

function parameters(account_id: string, snapshot: string, position: string | null, limit: number | null, filters: HistoryFilters) {
  return [
    account_id,
    snapshot,
    position ?? BIGINT_MAX, // "no bound" as a value (db/keyset-bounds.ts)
    limit,
    filters.types ?? null,
    filters.search === undefined ? null : likePattern(filters.search),
    filters.from ?? null,
    filters.to ?? null,
  ];
}

/** The snapshot a new walk is pinned to: now, or if it is too large to carry in a cursor, everything below xmin. */
export async function currentSnapshot(context: LedgerContext): Promise<string> {
  const [row] = await context.database.query<{ snapshot: string; xmin: string }>(
    "SELECT pg_current_snapshot()::text AS snapshot, pg_snapshot_xmin(pg_current_snapshot())::text AS xmin",
  );
  return row!.snapshot.length <= SNAPSHOT_TEXT_LENGTH_MAX ? row!.snapshot : `${row!.xmin}:${row!.xmin}:`;
}

/**
 * The balance as of the snapshot, in one statement. A checkpoint whose delta has grown past CHECKPOINT_DELTA_MAX
 * is refreshed afterwards, as any balance read does, so the next page reads a short delta. One that has fallen
 * further behind than a fold chunk (an account never read) is first folded forward in chunks, each committed, so
 * no statement here reads more than a chunk of delta rows plus those above the horizon.
 */
async function balanceAsOf(context: LedgerContext, account_id: string, snapshot: string): Promise<bigint> {
  const cap = context.fold_policy.chunk_rows;
  let [row] = await context.database.query<{ balance: string; delta_rows: string }>(BALANCE_AS_OF_SQL, [account_id, snapshot, cap]);
  if (Number(row!.delta_rows) >= cap) {
    await refreshCheckpoint(context.database, account_id, context.fold_policy);
    // What is left above the checkpoint now is above the horizon: read it whole.
    [row] = await context.database.query<{ balance: string; delta_rows: string }>(BALANCE_AS_OF_SQL, [account_id, snapshot, null]);
  }
  if (Number(row!.delta_rows) > context.checkpoint_policy.delta_max) await refreshQuietly(context, [account_id]);
  return numericToNanos(row!.balance);
}

/**
 * Whether more than a chunk of rows lies above the checkpoint, which only happens to an account that has not been
 * read for a long time: one short index probe. Best effort (false on failure): balanceAsOf folds whatever is still
 * needed.
 */
async function checkpointFarBehind(context: LedgerContext, account_id: string): Promise<boolean> {
  try {
    const [probe] = await context.database.query<{ far_behind: boolean }>(FAR_BEHIND_SQL, [account_id, context.fold_policy.chunk_rows]);
    return probe!.far_behind;
  } catch (error) {
    context.logger.warn({ err: error, account_id }, "checkpoint refresh failed");
    return false;
  }
}

/** Folds the checkpoint forward in chunks. Best effort, like checkpointFarBehind. */
async function catchUpCheckpoint(context: LedgerContext, account_id: string): Promise<void> {
  try {
    await refreshCheckpoint(context.database, account_id, context.fold_policy);
  } catch (error) {
    context.logger.warn({ err: error, account_id }, "checkpoint refresh failed");
  }
}

/**
 * How many items match. An ungrouped count without a search or date filter is answered from the batch aggregates
 * (their row counts) rather than by counting every row: O(batches), not O(rows).
 */
async function countItems(
  context: LedgerContext,
  account_id: string,
  snapshot: string,
  group_batches: boolean,
  filters: HistoryFilters,
): Promise<number> {
  const params = parameters(account_id, snapshot, null, null, filters);
  const rowLevelFilter = filters.search !== undefined || filters.from !== undefined || filters.to !== undefined;
  if (!group_batches && rowLevelFilter) {
    const [rows] = await context.database.query<{ item_count: string }>(ungroupedTotalsSql("all"), params);
    return Number(rows!.item_count);
  }
  const [totals] = await context.database.query<{ item_count: string; row_count: string }>(groupedTotalsSql("all"), params);
  return Number(group_batches ? totals!.item_count : totals!.row_count);
}

/**
 * One page of an account's history, newest first.
 *
 * A new walk (no `after`) first rolls up the account's batches (best effort: if another roll-up holds the lock,
 * the unfolded rows are grouped on the fly instead), then pins a snapshot. Later pages reuse the cursor's
 * snapshot and do not roll up, so the aggregates they read rarely change under them.
 *
 * `balance_after` is exact: the balance as of the snapshot, less the deltas of every item listed above this one.
 * Summing the items above costs O(offset) aggregate rows, not O(history). With a type or search filter the listed
 * items no longer add up to the balance, so it is omitted (null).
 */
export async function listHistory(
  context: LedgerContext,
  request: {
    account_id: string;
    group_batches: boolean;
    limit: number;
    offset: number;
    after: HistoryPosition | undefined;
    filters: HistoryFilters;
  },
): Promise<HistoryPage> {
  const { account_id, group_batches, limit, offset, after, filters } = request;
  if (after === undefined) {
    // The probe runs beside the roll-up; the checkpoint is folded after it, because a roll-up carries the
    // checkpoint along when it lies in the roll-up's path (rollup.ts), as on an account never read: one pass over
    // the rows for both folds, and what is left for the checkpoint's own fold is then at most a chunk.
    const [, far_behind] = await Promise.all([
      group_batches
        ? rollUpBatches(context, account_id).catch((error: unknown) => {
            context.logger.warn({ err: error, account_id }, "batch roll-up failed; grouping on the fly");
          })
        : undefined,
      checkpointFarBehind(context, account_id),
    ]);
    if (far_behind) await catchUpCheckpoint(context, account_id);
  }
  const snapshot = after?.snapshot ?? (await currentSnapshot(context));
  const position = after?.position ?? null;
  const pageSql = group_batches ? GROUPED_PAGE_SQL : UNGROUPED_PAGE_SQL;
  const rows = await context.database.query<ItemRow>(
    pageSql,
    parameters(account_id, snapshot, position, offset + limit + 1, filters),
  );
  const pageRows = rows.slice(offset, offset + limit);
  const total = after?.total ?? (await countItems(context, account_id, snapshot, group_batches, filters));

  const balances = await runningBalances(context, { account_id, group_batches, snapshot, filters, after, offset, pageRows });
  const rowItems = pageRows.map((row, index): HistoryItem => ({
    id: row.id,
    type: row.type,
    amount: canonicalNumeric(row.amount),
    delta: canonicalNumeric(row.delta),
    idempotency_key: row.idempotency_key,
    batch_id: row.batch_id,
    batch_count: Number(row.row_count),
    description: row.description,
    metadata: row.metadata,
    created_at: new Date(row.last_at).toISOString(),
    first_created_at: new Date(row.first_at).toISOString(),
    last_created_at: new Date(row.last_at).toISOString(),
    ...(row.hold_id ? { hold_id: row.hold_id } : {}),
    balance_after: balances === undefined ? null : formatNanos(balances.after[index]!),
    ...(row.meter === null ? {} : { meter: row.meter, quantities: row.quantities ?? {}, price_version: Number(row.price_version) }),
  }));
  // Refunds, reversals and transfer legs show what they refer to.
  const items = await withLinks(context, rowItems);
  const hasMore = rows.length > offset + limit;
  return {
    items,
    total,
    page_start_balance: balances === undefined || balances.after.length === 0 ? null : formatNanos(balances.after[0]!),
    snapshot,
    next:
      hasMore && pageRows.length > 0
        ? {
            snapshot,
            position: pageRows.at(-1)!.position,
            total,
            balance_below: balances === undefined ? null : formatNanos(balances.below),
          }
        : undefined,
  };
}

/**
 * The balance after each item of a page, and after everything below its last item.
 *
 * balance_after of an item is the balance as of the walk's snapshot less the deltas of every item listed above it
 * in the unfiltered listing: items are taken whole, in position order (a batch at its last row). A date filter
 * selects by created_at, which is the inserting transaction's start and need not follow position order under
 * concurrency, so the items it drops can sit anywhere between listed ones: their deltas are summed per gap
 * (gapSumsSql) and subtracted too. With a type or search filter the dropped items are most of the history, so
 * balances are omitted instead (undefined: the API shows null).
 *
 * The first item's balance is carried by the cursor (less the gap between the cursor's position and the item), or
 * computed as the balance as of the snapshot less everything above the item.
 */
async function runningBalances(
  context: LedgerContext,
  request: {
    account_id: string;
    group_batches: boolean;
    snapshot: string;
    filters: HistoryFilters;
    after: HistoryPosition | undefined;
    offset: number;
    pageRows: ItemRow[];
  },
): Promise<{ after: bigint[]; below: bigint } | undefined> {
  const { account_id, group_batches, snapshot, filters, after, offset, pageRows } = request;
  if (filters.types !== undefined || filters.search !== undefined) return undefined;
  if (pageRows.length === 0) return { after: [], below: 0n };
  const unfiltered: HistoryFilters = { types: undefined, search: undefined, from: undefined, to: undefined };
  const carried = offset === 0 && typeof after?.balance_below === "string" ? numericToNanos(after.balance_below) : undefined;
  // The top of the range whose unlisted items must be accounted for: the cursor's position when its balance is
  // carried, else the first item itself (the items above it are summed in full below).
  const top = carried === undefined ? pageRows[0]!.position : after!.position;

  const gaps = new Map<string, bigint>();
  // Without a date filter nothing between listed items is left out; with one item and no carried balance, there is
  // no range between them.
  if ((filters.from !== undefined || filters.to !== undefined) && top !== pageRows.at(-1)!.position) {
    const anchors = [...new Set([top, ...pageRows.map((row) => row.position)])];
    const rows = await context.database.query<{ anchor: string; delta_sum: string }>(gapSumsSql(group_batches), [
      ...parameters(account_id, snapshot, top, null, unfiltered),
      pageRows.at(-1)!.position,
      anchors,
    ]);
    for (const row of rows) gaps.set(row.anchor, numericToNanos(row.delta_sum));
  }
  const gapBelow = (position: string) => gaps.get(position) ?? 0n;

  let balance: bigint;
  if (carried !== undefined) {
    balance = carried - gapBelow(top);
  } else {
    const totalsSql = group_batches ? groupedTotalsSql : ungroupedTotalsSql;
    const [above] = await context.database.query<{ delta_sum: string }>(
      totalsSql("above"),
      parameters(account_id, snapshot, pageRows[0]!.position, null, unfiltered),
    );
    balance = (await balanceAsOf(context, account_id, snapshot)) - numericToNanos(above!.delta_sum);
  }
  const balances: bigint[] = [];
  for (const [index, row] of pageRows.entries()) {
    balances.push(balance);
    balance -= numericToNanos(row.delta);
    // The gap below the last item reaches down to an item of the next page: that page subtracts it.
    if (index < pageRows.length - 1) balance -= gapBelow(row.position);
  }
  return { after: balances, below: balance };
}
