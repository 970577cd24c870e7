-- Prices are append-only, as entries are: a usage entry names (meter, price_version), and that row must stay what
-- it was when the entry was priced. A change is a new version (PUT /v1/prices/{meter}).
CREATE FUNCTION tally_refuse_price_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'tally prices are append-only: % is not allowed', TG_OP
    USING ERRCODE = 'restrict_violation';
END;
$$;
--> statement-breakpoint
CREATE TRIGGER prices_refuse_update_delete
  BEFORE UPDATE OR DELETE ON prices
  FOR EACH ROW EXECUTE FUNCTION tally_refuse_price_change();
--> statement-breakpoint
CREATE TRIGGER prices_refuse_truncate
  BEFORE TRUNCATE ON prices
  FOR EACH STATEMENT EXECUTE FUNCTION tally_refuse_price_change();
