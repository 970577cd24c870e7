/**
 * The history model shared by the history integration tests: the ledger rows of an account read straight from the
 * entries table (in seq order, optionally only those visible in a snapshot), and the listing the history API must
 * return for them, computed independently of src/: grouped, each batch is one usage item carrying the sums of its
 * rows at the seq of its last row; ungrouped, one item per row; newest first, with balance_after the chronological
 * prefix sum. Amounts are exact decimal strings, modelled as BigInt nano-credits.
 */
import { formatNanos, numericToNanos } from "../../src/ledger/core/amount.js";
import type { Queryable } from "../../src/db/port.js";
import { rollUpBatches } from "../../src/ledger/history/rollup.js";
import type { Harness } from "./harness.js";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A decimal string in the canonical form the API prints. */
export const canonical = (numeric: string) => formatNanos(numericToNanos(numeric));

/** One row of the entries table. */
export interface LedgerRow {
  seq: bigint;
  id: string;
  account_id: string;
  type: string;
  amount: string;
  delta: string;
  idempotency_key: string;
  batch_id: string | null;
  description: string | null;
  metadata: Record<string, unknown> | null;
  /** As the API prints it (milliseconds). */
  created_at: string;
  /** Full precision, UTC, fixed width: "2026-11-21T20:11:01.297123Z"; compares as a string. */
  created_us: string;
}

/** The entries columns that toLedgerRow maps (created_us is the full-precision UTC time). */
export const ROW_COLUMNS = `seq::text AS seq, id::text AS id, account_id, type, amount::text AS amount, delta::text AS delta,
  idempotency_key, batch_id::text AS batch_id, description, metadata, created_at,
  to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS created_us`;

/** One entries row, selected with ROW_COLUMNS, as the model holds it. */
export function toLedgerRow(row: Record<string, any>): LedgerRow {
  return {
    seq: BigInt(row.seq),
    id: row.id,
    account_id: row.account_id,
    type: row.type,
    amount: canonical(row.amount),
    delta: canonical(row.delta),
    idempotency_key: row.idempotency_key,
    batch_id: row.batch_id,
    description: row.description,
    metadata: row.metadata,
    created_at: new Date(row.created_at).toISOString(),
    created_us: row.created_us,
  };
}

/** The account's rows straight from the table, in seq order: all of them, or those visible in `snapshot`. */
export async function readLedgerRows(database: Queryable, account: string, snapshot?: string): Promise<LedgerRow[]> {
  const rows = await database.query<Record<string, any>>(
    snapshot === undefined
      ? `SELECT ${ROW_COLUMNS} FROM entries WHERE account_id = $1 ORDER BY entries.seq`
      : `SELECT ${ROW_COLUMNS} FROM entries WHERE account_id = $1 AND pg_visible_in_snapshot(xid, $2::pg_snapshot) ORDER BY entries.seq`,
    snapshot === undefined ? [account] : [account, snapshot],
  );
  return rows.map(toLedgerRow);
}

/** One history item as the API returns it. */
export interface Item {
  id: string;
  type: string;
  amount: string;
  delta: string;
  idempotency_key: string | null;
  batch_id: string | null;
  batch_count: number;
  description: string | null;
  metadata: Record<string, unknown> | null;
  created_at: string;
  first_created_at: string;
  last_created_at: string;
  balance_after: string | null;
}

/** The listing filters (type, search, from/to) as the model applies them. */
export interface Filters {
  types?: string[];
  search?: string;
  /** Bounds in the fixed-width UTC microsecond form of LedgerRow.created_us (the API gets the same string). */
  from?: string;
  to?: string;
}

/** The expected items, newest first, and their count. */
export interface Listing {
  items: Item[];
  total: number;
}

/**
 * The expected listing. Grouped: every batch is one usage item (sums, row count, first/last times, no key, no
 * description) at the seq of its last row; everything else is one item per row. balance_after is the prefix sum in
 * position order, whatever the filters; it is null when a type or search filter is set.
 */
export function modelListing(rows: readonly LedgerRow[], group: boolean, filters: Filters = {}): Listing {
  interface Unit {
    position: bigint;
    batch: boolean;
    delta: bigint;
    type: string;
    description: string | null;
    last_us: string;
    item: Omit<Item, "balance_after">;
  }
  const units: Unit[] = [];
  const batches = new Map<string, LedgerRow[]>();
  for (const row of rows) {
    if (group && row.batch_id !== null) {
      batches.set(row.batch_id, [...(batches.get(row.batch_id) ?? []), row]);
      continue;
    }
    units.push({
      position: row.seq,
      batch: false,
      delta: numericToNanos(row.delta),
      type: row.type,
      description: row.description,
      last_us: row.created_us,
      item: {
        id: row.id,
        type: row.type,
        amount: row.amount,
        delta: row.delta,
        idempotency_key: row.idempotency_key,
        batch_id: row.batch_id,
        batch_count: 1,
        description: row.description,
        metadata: row.metadata,
        created_at: row.created_at,
        first_created_at: row.created_at,
        last_created_at: row.created_at,
      },
    });
  }
  for (const [batch_id, members] of batches) {
    const amount = members.reduce((sum, row) => sum + numericToNanos(row.amount), 0n);
    const delta = members.reduce((sum, row) => sum + numericToNanos(row.delta), 0n);
    const byTime = [...members].sort((left, right) => (left.created_us < right.created_us ? -1 : left.created_us > right.created_us ? 1 : 0));
    const position = members.reduce((max, row) => (row.seq > max ? row.seq : max), 0n);
    units.push({
      position,
      batch: true,
      delta,
      type: "usage",
      description: null,
      last_us: byTime.at(-1)!.created_us,
      item: {
        id: batch_id,
        type: "usage",
        amount: formatNanos(amount),
        delta: formatNanos(delta),
        idempotency_key: null,
        batch_id,
        batch_count: members.length,
        description: null,
        metadata: null,
        created_at: byTime.at(-1)!.created_at,
        first_created_at: byTime[0]!.created_at,
        last_created_at: byTime.at(-1)!.created_at,
      },
    });
  }
  units.sort((left, right) => (left.position < right.position ? -1 : 1));
  let running = 0n;
  const balances = units.map((unit) => (running += unit.delta));

  const matches = (unit: Unit): boolean => {
    if (filters.types !== undefined && !filters.types.includes(unit.type)) return false;
    if (filters.search !== undefined) {
      if (unit.batch || unit.description === null) return false;
      if (!unit.description.toLowerCase().includes(filters.search.toLowerCase())) return false;
    }
    if (filters.from !== undefined && unit.last_us < filters.from) return false;
    if (filters.to !== undefined && unit.last_us > filters.to) return false;
    return true;
  };
  const withBalances = filters.types === undefined && filters.search === undefined;
  const items = units
    .map((unit, index) => ({ unit, balance: balances[index]! }))
    .filter(({ unit }) => matches(unit))
    .reverse()
    .map(({ unit, balance }) => ({ ...unit.item, balance_after: withBalances ? formatNanos(balance) : null }));
  return { items, total: items.length };
}

/** Folds every batched row of the account into batch_aggregates (retrying while another transaction holds the horizon). */
export async function rollUpFully(harness: Pick<Harness, "database" | "ledger">, account: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    await rollUpBatches(harness.ledger, account);
    const [row] = await harness.database.query<{ done: boolean }>(
      `SELECT NOT EXISTS (
         SELECT 1 FROM entries WHERE account_id = $1 AND batch_id IS NOT NULL
           AND xid >= COALESCE((SELECT xid_boundary FROM rollup_boundaries WHERE account_id = $1), '0'::xid8)) AS done`,
      [account],
    );
    if (row!.done) return;
    if (Date.now() > deadline) throw new Error("the roll-up boundary did not pass the account's rows in 20 s");
    await sleep(50);
  }
}
