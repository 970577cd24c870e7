import type { Queryable } from "../../db/port.js";
import { TallyError } from "../../errors.js";
import type { LedgerContext } from "../core/context.js";
import { LotBook, applyEntry } from "./allocation.js";
import { loadFoldState, loadUnfolded, tableSource } from "./lot-store.js";
import { readInOneSnapshot } from "./read-snapshot.js";
import { foldLots } from "./settle.js";

/** Entries the read-only view applies on top of the fold; past this, the fold catches up first (a write). */
const VIEW_ROWS_MAX = 5000;
/**
 * After a fold, only entries above the xmin horizon remain; more than this many means one transaction has held the
 * horizon back for a long time. The view then refuses (503) rather than read without bound.
 */
const VIEW_ROWS_HELD_BACK_MAX = 200_000;
/** A view that applied more entries than this folds them afterwards, so the next read's delta is short again. */
const VIEW_ROWS_REFOLD = 500;

/**
 * The account's lots as of now, without writing: the fold's state plus every committed entry after it, applied in
 * memory. The fold itself only advances below the xmin horizon, which any long transaction in the cluster holds
 * back; a read must not show stale lots because of that. `book` holds exactly the lots the entries after the fold
 * touched or opened (their state in memory is the truth for them); every other lot is as the table says.
 * O(delta) entries and O(lots those entries consume); no lock.
 */
export interface LotView {
  book: LotBook;
  /** The ids of the lots in `book`: the ones a table read must take from memory instead. */
  memory_ids: string[];
  transaction: Queryable;
}

export async function withLotView<T>(
  context: LedgerContext,
  account_id: string,
  work: (view: LotView) => Promise<T>,
): Promise<T> {
  const attempt = () => readInOneSnapshot(context.database, (transaction) => build(transaction, account_id, work));
  const first = await attempt();
  if (first.kind === "done") {
    // Like a balance read whose checkpoint delta grew long: best effort, never fails the read.
    if (first.applied > VIEW_ROWS_REFOLD) {
      await foldLots(context, account_id).catch((error: unknown) =>
        context.logger.warn({ err: error, account_id }, "lot fold after a long view failed"),
      );
    }
    return first.value;
  }
  await foldLots(context, account_id);
  const second = await attempt();
  if (second.kind === "done") return second.value;
  // Still far behind after a fold: a long transaction holds the horizon back. Apply up to the larger bound.
  const third = await readInOneSnapshot(context.database, (transaction) =>
    build(transaction, account_id, work, VIEW_ROWS_HELD_BACK_MAX),
  );
  if (third.kind === "done") return third.value;
  throw new TallyError(
    "service_unavailable",
    "a long-running transaction holds back the fold of this account's lots; retry when it has finished",
  );
}

async function build<T>(
  transaction: Queryable,
  account_id: string,
  work: (view: LotView) => Promise<T>,
  rows_max = VIEW_ROWS_MAX,
): Promise<{ kind: "done"; value: T; applied: number } | { kind: "too_many_rows" }> {
  const state = await loadFoldState(transaction, account_id);
  const { entries } = await loadUnfolded(transaction, account_id, state, { below_horizon: false, limit: rows_max + 1 });
  if (entries.length > rows_max) return { kind: "too_many_rows" };
  const book = new LotBook(tableSource(transaction, account_id));
  const allocation = { overage: state.overage };
  for (const entry of entries) await applyEntry(book, allocation, account_id, entry);
  const memory_ids = book.all().map((lot) => lot.entry_id);
  return { kind: "done", value: await work({ book, memory_ids, transaction }), applied: entries.length };
}
