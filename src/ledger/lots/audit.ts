import type { Queryable } from "../../db/port.js";
import { formatNanos, numericToNanos } from "../core/amount.js";
import type { LedgerContext } from "../core/context.js";
import {
  EMPTY_SOURCE,
  LotBook,
  applyEntry,
  expireLot,
  toAllocationEntry,
  type AllocationEntry,
  type EntryRowText,
} from "./allocation.js";
import { loadFoldState, toLot, type LotRow } from "./lot-store.js";
import { readInOneSnapshot } from "./read-snapshot.js";

/** Entries read per page of the audit's walk. */
const AUDIT_PAGE_ROWS = 5000;
/** Disagreements reported at most (the counts are always exact). */
const DISAGREEMENTS_LISTED_MAX = 100;

/** A snapshot as pg_snapshot prints it: xmin:xmax:xip,xip,... */
export interface ParsedSnapshot {
  xmin: bigint;
  xmax: bigint;
  in_progress: Set<bigint>;
}

export function parseSnapshot(text: string): ParsedSnapshot {
  const [xmin, xmax, list] = text.split(":");
  return {
    xmin: BigInt(xmin!),
    xmax: BigInt(xmax!),
    in_progress: new Set((list ?? "").split(",").filter((item) => item !== "").map((item) => BigInt(item))),
  };
}

/** pg_visible_in_snapshot for a committed transaction: did it commit before the snapshot was taken? */
export function visibleIn(xid: bigint, snapshot: ParsedSnapshot): boolean {
  if (xid < snapshot.xmin) return true;
  return xid < snapshot.xmax && !snapshot.in_progress.has(xid);
}

interface Cut {
  snapshot: ParsedSnapshot;
  expirations: { id: string; lot_id: string; amount: bigint }[];
}

export interface ExpirationDisagreement {
  expiration_entry_id: string;
  lot_id: string;
  written: string;
  recomputed: string;
}

export interface LotDisagreement {
  lot_id: string;
  stored_status: string;
  stored_remaining: string;
  recomputed_status: string;
  recomputed_remaining: string;
}

export interface LotAudit {
  account_id: string;
  entries_read: number;
  expirations_checked: number;
  lots_checked: number;
  agrees: boolean;
  expiration_disagreements: ExpirationDisagreement[];
  lot_disagreements: LotDisagreement[];
}

/**
 * Recomputes every lot of an account from its entries alone and compares the result with the expirations written
 * and with the fold's lot rows. The order is the one docs/design.md defines: the expirations' cut snapshots split
 * the entries into epochs (an entry belongs to the first cut that sees it; entries no cut sees come last), entries
 * apply in (epoch, xid, seq) order, and each cut's expirations apply at the end of its epoch.
 *
 * The walk streams the entries in (xid, seq) order. An entry of the current epoch applies at once; an entry of a
 * later epoch (it committed after a cut although its xid is smaller than some entry's that did not) waits in a
 * small buffer. An epoch is complete once the walk reaches its cut's xmax, because every transaction that cut saw
 * has a smaller xid. Memory is O(lots + buffered entries), not O(entries). Reads one REPEATABLE READ snapshot.
 */
export async function auditLots(context: LedgerContext, account_id: string): Promise<LotAudit> {
  return readInOneSnapshot(context.database, (transaction) => recompute(transaction, account_id));
}

async function loadCuts(transaction: Queryable, account_id: string): Promise<Cut[]> {
  const rows = await transaction.query<{ id: string; lot_id: string; amount: string; cut_snapshot: string }>(
    `SELECT id::text AS id, lot_id::text AS lot_id, amount::text AS amount, cut_snapshot::text AS cut_snapshot
     FROM entries WHERE account_id = $1 AND type = 'expiration' ORDER BY seq`,
    [account_id],
  );
  // Cuts are taken one at a time under the account's lot lock, so insertion order is cut order.
  const cuts: Cut[] = [];
  let previous: string | undefined;
  for (const row of rows) {
    if (row.cut_snapshot !== previous) {
      cuts.push({ snapshot: parseSnapshot(row.cut_snapshot), expirations: [] });
      previous = row.cut_snapshot;
    }
    cuts[cuts.length - 1]!.expirations.push({ id: row.id, lot_id: row.lot_id, amount: numericToNanos(row.amount) });
  }
  return cuts;
}

async function recompute(transaction: Queryable, account_id: string): Promise<LotAudit> {
  const cuts = await loadCuts(transaction, account_id);
  const fold = await loadFoldState(transaction, account_id);
  const position = fold.position_xid === null ? null : { xid: BigInt(fold.position_xid), seq: BigInt(fold.position_seq!) };
  const foldCut = fold.cut_snapshot === null ? null : parseSnapshot(fold.cut_snapshot);
  const book = new LotBook(EMPTY_SOURCE);
  const allocation = { overage: 0n };
  const expirationDisagreements: ExpirationDisagreement[] = [];
  let expirationsChecked = 0;
  let expirationDisagreementCount = 0;
  let lotResult: { checked: number; disagreements: LotDisagreement[]; count: number } | undefined;

  /** The index of the first cut that sees `xid` (cuts.length when none does): cuts are nested, so bisect. */
  const epochOf = (xid: bigint): number => {
    let low = 0;
    let high = cuts.length;
    while (low < high) {
      const middle = (low + high) >> 1;
      if (visibleIn(xid, cuts[middle]!.snapshot)) high = middle;
      else low = middle + 1;
    }
    return low;
  };

  let current = 0;
  const waiting: { epoch: number; entry: AllocationEntry }[] = [];

  const apply = async (entry: AllocationEntry) => {
    // The fold's own state covers the entries its cut saw plus the later ones up to its position; the first entry
    // past that is where the stored lots must equal the recomputed ones.
    if (
      lotResult === undefined &&
      current === cuts.length &&
      !(foldCut && visibleIn(entry.xid, foldCut)) &&
      !(position && (entry.xid < position.xid || (entry.xid === position.xid && entry.seq <= position.seq)))
    ) {
      lotResult = await compareStoredLots(transaction, account_id, book);
    }
    await applyEntry(book, allocation, account_id, entry);
  };

  const closeEpoch = async () => {
    const cut = cuts[current]!;
    for (const expiration of cut.expirations) {
      expirationsChecked++;
      const lot = book.get(expiration.lot_id);
      const recomputed = lot ? expireLot(book, lot, lot.created_at) : 0n;
      if (recomputed !== expiration.amount) {
        expirationDisagreementCount++;
        if (expirationDisagreements.length < DISAGREEMENTS_LISTED_MAX) {
          expirationDisagreements.push({
            expiration_entry_id: expiration.id,
            lot_id: expiration.lot_id,
            written: formatNanos(expiration.amount),
            recomputed: formatNanos(recomputed),
          });
        }
      }
    }
    current++;
    const ready = waiting.filter((item) => item.epoch === current);
    for (let index = waiting.length - 1; index >= 0; index--) if (waiting[index]!.epoch === current) waiting.splice(index, 1);
    for (const item of ready) await apply(item.entry);
  };

  let entriesRead = 0;
  let after: { xid: string; seq: string } | null = null;
  for (;;) {
    const rows: EntryRowText[] = await transaction.query<EntryRowText>(
      `SELECT id::text AS id, seq::text AS seq, xid::text AS xid, type, delta::text AS delta, priority, expires_at, created_at
       FROM entries
       WHERE account_id = $1 AND (xid, seq) > ($2::xid8, $3::bigint)
       ORDER BY xid, seq LIMIT $4`,
      [account_id, after?.xid ?? "0", after?.seq ?? "0", AUDIT_PAGE_ROWS],
    );
    for (const row of rows) {
      const entry = toAllocationEntry(row);
      entriesRead++;
      // Every transaction a cut saw has an xid below its xmax: reaching it completes the epoch.
      while (current < cuts.length && entry.xid >= cuts[current]!.snapshot.xmax) await closeEpoch();
      if (entry.type === "expiration") continue;
      const epoch = epochOf(entry.xid);
      if (epoch === current) await apply(entry);
      else waiting.push({ epoch, entry });
    }
    if (rows.length < AUDIT_PAGE_ROWS) break;
    after = { xid: rows[rows.length - 1]!.xid, seq: rows[rows.length - 1]!.seq };
  }
  while (current < cuts.length) await closeEpoch();
  lotResult ??= await compareStoredLots(transaction, account_id, book);

  return {
    account_id,
    entries_read: entriesRead,
    expirations_checked: expirationsChecked,
    lots_checked: lotResult.checked,
    agrees: expirationDisagreementCount === 0 && lotResult.count === 0,
    expiration_disagreements: expirationDisagreements,
    lot_disagreements: lotResult.disagreements,
  };
}

/** Every lot row the fold has written, against the recomputation at the same point of the order. */
async function compareStoredLots(
  transaction: Queryable,
  account_id: string,
  book: LotBook,
): Promise<{ checked: number; disagreements: LotDisagreement[]; count: number }> {
  const disagreements: LotDisagreement[] = [];
  let checked = 0;
  let count = 0;
  let afterSeq: string | null = null;
  for (;;) {
    const rows: LotRow[] = await transaction.query<LotRow>(
      `SELECT account_id, entry_id::text AS entry_id, entry_seq::text AS entry_seq, type, priority, expires_at,
              amount::text AS amount, remaining::text AS remaining, status, expiration_entry_id::text AS expiration_entry_id,
              expired_amount::text AS expired_amount, created_at, closed_at, folded
       FROM credit_lots WHERE account_id = $1 AND folded AND ($2::bigint IS NULL OR entry_seq > $2::bigint)
       ORDER BY entry_seq LIMIT $3`,
      [account_id, afterSeq, AUDIT_PAGE_ROWS],
    );
    for (const row of rows) {
      checked++;
      const stored = toLot(row);
      const recomputed = book.get(stored.entry_id);
      const recomputedStatus = recomputed?.status ?? "missing";
      const recomputedRemaining = recomputed?.remaining ?? 0n;
      if (recomputedStatus !== stored.status || recomputedRemaining !== stored.remaining) {
        count++;
        if (disagreements.length < DISAGREEMENTS_LISTED_MAX) {
          disagreements.push({
            lot_id: stored.entry_id,
            stored_status: stored.status,
            stored_remaining: formatNanos(stored.remaining),
            recomputed_status: recomputedStatus,
            recomputed_remaining: formatNanos(recomputedRemaining),
          });
        }
      }
    }
    if (rows.length < AUDIT_PAGE_ROWS) break;
    afterSeq = rows[rows.length - 1]!.entry_seq;
  }
  return { checked, disagreements, count };
}
