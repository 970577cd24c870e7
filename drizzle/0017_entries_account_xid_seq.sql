-- (account_id, xid) becomes (account_id, xid, seq), so that a fold's position inside one transaction is an index
-- condition (src/ledger/lots/lot-store.ts). Built CONCURRENTLY, outside any transaction (src/db/migrate.ts), before
-- the old index is dropped, so that upgrading a running deployment never blocks inserts nor leaves the delta read of
-- a balance without an index. Both statements are idempotent: an interrupted migration runs again from the start.
CREATE INDEX CONCURRENTLY IF NOT EXISTS "entries_account_xid_seq" ON "entries" USING btree ("account_id","xid","seq");--> statement-breakpoint
DROP INDEX CONCURRENTLY IF EXISTS "entries_account_xid";
