-- The ledger is append-only, and the database itself enforces it: a bug or a hand-typed query cannot rewrite
-- or erase history. Corrections are new entries. TRUNCATE is refused too, by a statement-level trigger.
CREATE FUNCTION tally_refuse_entry_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'tally entries are append-only: % is not allowed', TG_OP
    USING ERRCODE = 'restrict_violation';
END;
$$;
--> statement-breakpoint
CREATE TRIGGER entries_refuse_update_delete
  BEFORE UPDATE OR DELETE ON entries
  FOR EACH ROW EXECUTE FUNCTION tally_refuse_entry_change();
--> statement-breakpoint
CREATE TRIGGER entries_refuse_truncate
  BEFORE TRUNCATE ON entries
  FOR EACH STATEMENT EXECUTE FUNCTION tally_refuse_entry_change();
