import { CORRECTION_TYPES, type EntryType } from "../../db/schema.js";
import type { LedgerContext } from "../core/context.js";
import { entryLinks, type Entry } from "../core/entry.js";

const CORRECTIONS: ReadonlySet<EntryType> = new Set(CORRECTION_TYPES);

type Links = Pick<Entry, "original_entry_id" | "counterpart_entry_id" | "transfer_id">;

const LINKS_SQL = `
SELECT id::text AS id, original_entry_id::text AS original_entry_id, counterpart_entry_id::text AS counterpart_entry_id,
       transfer_id::text AS transfer_id
FROM entries
WHERE id = ANY($1::uuid[]) AND (original_entry_id IS NOT NULL OR transfer_id IS NOT NULL)`;

/**
 * Adds the links of the corrections among listed items (history pages, the all-entries listing), so a listing
 * shows what each refund, reversal or transfer leg refers to. One indexed query per page, and none for a page
 * without corrections; items that are not corrections (batches included) are returned unchanged.
 */
export async function withLinks<Item extends { id: string; type: EntryType; batch_id?: string | null }>(
  context: LedgerContext,
  items: Item[],
): Promise<(Item & Links)[]> {
  const ids = items.filter((item) => CORRECTIONS.has(item.type) && !item.batch_id).map((item) => item.id);
  if (ids.length === 0) return items;
  const rows = await context.database.query<{ id: string } & Links>(LINKS_SQL, [ids]);
  const byId = new Map(rows.map((row) => [row.id, entryLinks(row)]));
  return items.map((item) => ({ ...item, ...byId.get(item.id) }));
}
