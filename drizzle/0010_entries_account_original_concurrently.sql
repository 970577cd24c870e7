-- Built CONCURRENTLY, outside any transaction (src/db/migrate.ts), so that upgrading a running deployment does not
-- block inserts into a populated entries table. Moved here from 0005_linked_corrections, which built it inside the
-- migration transaction. IF NOT EXISTS: a database that already has it (from 0005 as first written) skips it.
CREATE INDEX CONCURRENTLY IF NOT EXISTS "entries_account_original" ON "entries" USING btree ("account_id","original_entry_id") WHERE "entries"."original_entry_id" IS NOT NULL;
