import type { LotStatus } from "../../db/schema.js";
import { numericToNanos } from "../core/amount.js";

/**
 * The allocation of debits to credit lots, as a pure fold over entries. The same code runs in the lot fold (which
 * saves its result), in the read-only view behind `expiring_next`, and in the audit that recomputes everything
 * from the entries alone, so the three cannot disagree about the rules:
 *
 * - an entry with a positive delta opens a lot of that amount; it first pays any overage (debit that no lot
 *   covered), so usage recorded before a grant exists is deducted from the next grant;
 * - an entry with a negative delta consumes open lots in consumption order (priority ascending, then expires_at
 *   ascending with "never" last, then creation order); what no lot covers becomes overage;
 * - an `expiration` is not applied where it stands in the entry stream: it takes effect at its cut (see
 *   docs/design.md, "Credit lots"), which the caller applies with `expire`.
 *
 * Allocation is defined by the sign of the delta, not by a list of types, so entry types added later (refunds,
 * transfers, reversals, adjustments) take part without a change here.
 */

export const DEFAULT_LOT_PRIORITY = 50;

export interface Lot {
  account_id: string;
  entry_id: string;
  /** The credit entry's seq: creation order, the last tie-breaker of the consumption order. */
  entry_seq: bigint;
  type: string;
  priority: number;
  /** ISO 8601, or null for a lot that never expires. */
  expires_at: string | null;
  amount: bigint;
  remaining: bigint;
  status: LotStatus;
  created_at: string;
  expiration_entry_id: string | null;
  expired_amount: bigint | null;
  closed_at: string | null;
  /** Changed by this fold: to be saved. */
  dirty: boolean;
}

/** What the fold reads of an entry. */
export interface AllocationEntry {
  id: string;
  seq: bigint;
  xid: bigint;
  type: string;
  delta: bigint;
  priority: number | null;
  expires_at: string | null;
  created_at: string;
}

export interface EntryRowText {
  id: string;
  seq: string;
  xid: string;
  type: string;
  delta: string;
  priority: number | string | null;
  expires_at: Date | string | null;
  created_at: Date | string;
}

export function toAllocationEntry(row: EntryRowText): AllocationEntry {
  return {
    id: row.id,
    seq: BigInt(row.seq),
    xid: BigInt(row.xid),
    type: row.type,
    delta: numericToNanos(row.delta),
    priority: row.priority === null ? null : Number(row.priority),
    expires_at: row.expires_at === null ? null : new Date(row.expires_at).toISOString(),
    created_at: new Date(row.created_at).toISOString(),
  };
}

/** The position of a lot in the consumption order. */
export interface LotKey {
  priority: number;
  expires_at: string | null;
  entry_seq: bigint;
}

function expiresSortMs(expires_at: string | null): number {
  return expires_at === null ? Number.POSITIVE_INFINITY : Date.parse(expires_at);
}

export function compareLots(a: LotKey, b: LotKey): number {
  if (a.priority !== b.priority) return a.priority - b.priority;
  const aExpires = expiresSortMs(a.expires_at);
  const bExpires = expiresSortMs(b.expires_at);
  if (aExpires !== bExpires) return aExpires < bExpires ? -1 : 1;
  return a.entry_seq < b.entry_seq ? -1 : a.entry_seq > b.entry_seq ? 1 : 0;
}

/** Where the lots not yet in memory come from: the fold's table, or nothing (the audit holds every lot). */
export interface LotSource {
  /** Open, folded lots strictly after `after` in consumption order (from the start when null), at most `limit`. */
  openAfter(after: LotKey | null, limit: number): Promise<Lot[]>;
}

export const EMPTY_SOURCE: LotSource = { openAfter: async () => [] };

const LOAD_PAGE_LOTS = 64;

/**
 * The lots a fold works on: the ones it loaded or opened, over a source it pages through in consumption order only
 * as far as debits reach. A debit touches the first open lots, so a fold reads O(lots it consumes), however many
 * lots the account has.
 */
export class LotBook {
  private readonly lots = new Map<string, Lot>();
  /** Open lots in memory, in consumption order. */
  private readonly open: Lot[] = [];
  private loadedUpTo: LotKey | null = null;
  private sourceExhausted = false;

  constructor(private readonly source: LotSource) {}

  get(entry_id: string): Lot | undefined {
    return this.lots.get(entry_id);
  }

  all(): Lot[] {
    return [...this.lots.values()];
  }

  dirty(): Lot[] {
    return this.all().filter((lot) => lot.dirty);
  }

  /** Adds a lot read from elsewhere (say, a due lot the caller loaded); the copy in memory wins. */
  remember(lot: Lot): Lot {
    const known = this.lots.get(lot.entry_id);
    if (known) return known;
    this.lots.set(lot.entry_id, lot);
    if (lot.status === "open") this.insertOpen(lot);
    return lot;
  }

  add(lot: Lot): void {
    this.lots.set(lot.entry_id, lot);
    if (lot.status === "open") this.insertOpen(lot);
  }

  private insertOpen(lot: Lot): void {
    let low = 0;
    let high = this.open.length;
    while (low < high) {
      const middle = (low + high) >> 1;
      if (compareLots(this.open[middle]!, lot) < 0) low = middle + 1;
      else high = middle;
    }
    this.open.splice(low, 0, lot);
  }

  /** Closes a lot (consumed or expired) and takes it off the open list. */
  close(lot: Lot, status: "consumed" | "expired", closed_at: string): void {
    lot.status = status;
    lot.closed_at = closed_at;
    lot.dirty = true;
    const index = this.open.indexOf(lot);
    if (index >= 0) this.open.splice(index, 1);
  }

  /** The first open lot in consumption order, paging the source in as far as needed. */
  async first(): Promise<Lot | undefined> {
    for (;;) {
      const head = this.open[0];
      if (this.sourceExhausted) return head;
      if (head && this.loadedUpTo && compareLots(head, this.loadedUpTo) <= 0) return head;
      const page = await this.source.openAfter(this.loadedUpTo, LOAD_PAGE_LOTS);
      if (page.length < LOAD_PAGE_LOTS) this.sourceExhausted = true;
      if (page.length > 0) this.loadedUpTo = page[page.length - 1]!;
      for (const lot of page) this.remember(lot);
    }
  }
}

export interface AllocationState {
  /** Debit no lot has covered yet; the next credit pays it first. */
  overage: bigint;
}

/** Applies one entry to the book. `account_id` is the account every entry belongs to. */
export async function applyEntry(
  book: LotBook,
  state: AllocationState,
  account_id: string,
  entry: AllocationEntry,
): Promise<void> {
  if (entry.type === "expiration") return;
  if (entry.delta > 0n) {
    const cover = entry.delta < state.overage ? entry.delta : state.overage;
    state.overage -= cover;
    const remaining = entry.delta - cover;
    const lot: Lot = {
      account_id,
      entry_id: entry.id,
      entry_seq: entry.seq,
      type: entry.type,
      priority: entry.priority ?? DEFAULT_LOT_PRIORITY,
      expires_at: entry.expires_at,
      amount: entry.delta,
      remaining,
      status: remaining === 0n ? "consumed" : "open",
      created_at: entry.created_at,
      expiration_entry_id: null,
      expired_amount: null,
      closed_at: remaining === 0n ? entry.created_at : null,
      dirty: true,
    };
    const known = book.get(entry.id);
    if (known) throw new Error(`lot ${entry.id} opened twice: the fold read an entry it had already applied`);
    book.add(lot);
    return;
  }
  let debit = -entry.delta;
  while (debit > 0n) {
    const lot = await book.first();
    if (!lot) {
      state.overage += debit;
      return;
    }
    const take = debit < lot.remaining ? debit : lot.remaining;
    lot.remaining -= take;
    lot.dirty = true;
    debit -= take;
    if (lot.remaining === 0n) book.close(lot, "consumed", entry.created_at);
  }
}

/** Ends a lot at its cut: what is left of it leaves the balance. Returns the amount expired (0 writes nothing). */
export function expireLot(book: LotBook, lot: Lot, closed_at: string): bigint {
  if (lot.status !== "open") return 0n;
  const amount = lot.remaining;
  lot.remaining = 0n;
  if (amount === 0n) {
    book.close(lot, "consumed", closed_at);
    return 0n;
  }
  lot.expired_amount = amount;
  book.close(lot, "expired", closed_at);
  return amount;
}
