import type { Queryable } from "../../db/port.js";

/**
 * Which accounts exist, cached in process. Entries carry no foreign key to accounts (it would lock the account row
 * on every insert), so posting checks existence here. Accounts are never deleted, so a cached "exists" never goes
 * stale; only positive answers are cached, so an account created by another process is found on the next miss.
 * Bounded: the least recently used id is forgotten first.
 */
export class KnownAccounts {
  private readonly ids = new Map<string, true>();

  constructor(private readonly capacity: number = 100_000) {}

  remember(id: string): void {
    this.ids.delete(id);
    this.ids.set(id, true);
    if (this.ids.size > this.capacity) {
      const oldest = this.ids.keys().next().value;
      if (oldest !== undefined) this.ids.delete(oldest);
    }
  }

  /** Returns the ids among `ids` that do not exist. One query for all cache misses. */
  async missing(database: Queryable, ids: readonly string[]): Promise<string[]> {
    const unknown = [...new Set(ids)].filter((id) => !this.ids.has(id));
    if (unknown.length === 0) return [];
    const rows = await database.query<{ id: string }>("SELECT id FROM accounts WHERE id = ANY($1::text[])", [
      unknown,
    ]);
    for (const row of rows) this.remember(row.id);
    const found = new Set(rows.map((row) => row.id));
    return unknown.filter((id) => !found.has(id));
  }
}
