import { ENTRY_COLUMNS, toEntry, type Entry, type EntryRow } from "../core/entry.js";
import type { LedgerContext } from "../core/context.js";
import { withLinks } from "../corrections/links.js";
import { ALL_ENTRIES_COUNT_SQL, ALL_ENTRIES_PAGE_SQL } from "./history-sql.js";
import { currentSnapshot, likePattern, type HistoryFilters, type HistoryPosition } from "./history.js";
import { UUID_MAX } from "../../db/keyset-bounds.js";

/** Entries across every account, newest first; an admin view, pinned to a snapshot like any history walk. */
export async function listAllEntries(
  context: LedgerContext,
  request: { limit: number; offset: number; after: HistoryPosition | undefined; filters: HistoryFilters },
): Promise<{ items: Entry[]; total: number; snapshot: string; next: HistoryPosition | undefined }> {
  const { limit, offset, after, filters } = request;
  const snapshot = after?.snapshot ?? (await currentSnapshot(context));
  const shared = [
    filters.types ?? null,
    filters.search === undefined ? null : likePattern(filters.search),
    filters.from ?? null,
    filters.to ?? null,
  ];
  const rows = await context.database.query<EntryRow & { position: string }>(ALL_ENTRIES_PAGE_SQL, [
    snapshot,
    after?.position ?? UUID_MAX,
    offset + limit + 1,
    ...shared,
  ]);
  const pageRows = rows.slice(offset, offset + limit);
  // Counting spans the whole table, so a walk counts once, on its first page, and carries the total in its cursor:
  // pinned to one snapshot, the count cannot change. Later pages cost O(page).
  const total = after?.total ?? (await countAllEntries(context, snapshot, shared));
  return {
    items: await withLinks(context, pageRows.map((row) => toEntry({ ...row, request_hash: "" }))),
    total,
    snapshot,
    next: rows.length > offset + limit && pageRows.length > 0 ? { snapshot, position: pageRows.at(-1)!.position, total } : undefined,
  };
}

async function countAllEntries(context: LedgerContext, snapshot: string, shared: unknown[]): Promise<number> {
  const [count] = await context.database.query<{ item_count: string }>(ALL_ENTRIES_COUNT_SQL, [snapshot, null, null, ...shared]);
  return Number(count!.item_count);
}

/** One entry by id, wherever it lives. */
export async function getEntry(context: LedgerContext, id: string): Promise<Entry | undefined> {
  const [row] = await context.database.query<EntryRow>(`SELECT ${ENTRY_COLUMNS} FROM entries WHERE id = $1::uuid`, [id]);
  return row ? toEntry(row) : undefined;
}
