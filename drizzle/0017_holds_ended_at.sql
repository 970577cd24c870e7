-- Retention of ended holds (src/ledger/holds/retention.ts). Built CONCURRENTLY, outside any transaction
-- (src/db/migrate.ts): holds takes a row per reserved call, so a running deployment's table can be large and busy.
CREATE INDEX CONCURRENTLY IF NOT EXISTS "holds_ended_at" ON "holds" USING btree (COALESCE("closed_at", "expires_at"));
