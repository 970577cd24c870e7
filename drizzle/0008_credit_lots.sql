CREATE TABLE "credit_lots" (
	"account_id" text NOT NULL,
	"entry_id" uuid NOT NULL,
	"entry_seq" bigint NOT NULL,
	"type" text NOT NULL,
	"priority" smallint NOT NULL,
	"expires_at" timestamp with time zone,
	"expires_sort" timestamp with time zone NOT NULL,
	"amount" numeric(25, 9) NOT NULL,
	"remaining" numeric(25, 9) NOT NULL,
	"status" text NOT NULL,
	"folded" boolean NOT NULL,
	"expiration_entry_id" uuid,
	"expired_amount" numeric(25, 9),
	"created_at" timestamp with time zone NOT NULL,
	"closed_at" timestamp with time zone,
	CONSTRAINT "credit_lots_pkey" PRIMARY KEY("account_id","entry_id"),
	CONSTRAINT "credit_lots_status_known" CHECK ("credit_lots"."status" IN ('open', 'consumed', 'expired')),
	CONSTRAINT "credit_lots_remaining_range" CHECK ("credit_lots"."remaining" >= 0 AND "credit_lots"."remaining" <= "credit_lots"."amount")
);
--> statement-breakpoint
CREATE TABLE "lot_folds" (
	"account_id" text PRIMARY KEY NOT NULL,
	"cut_snapshot" "pg_snapshot",
	"position_xid" "xid8",
	"position_seq" bigint,
	"overage" numeric(25, 9) NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "balance_events" DROP CONSTRAINT "balance_events_type_known";--> statement-breakpoint
ALTER TABLE "entries" DROP CONSTRAINT "entries_type_known";--> statement-breakpoint
ALTER TABLE "entries" DROP CONSTRAINT "entries_delta_sign";--> statement-breakpoint
ALTER TABLE "balance_events" ADD COLUMN "lot_id" uuid;--> statement-breakpoint
ALTER TABLE "balance_events" ADD COLUMN "amount" numeric;--> statement-breakpoint
ALTER TABLE "entries" ADD COLUMN "priority" smallint;--> statement-breakpoint
ALTER TABLE "entries" ADD COLUMN "expires_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "entries" ADD COLUMN "lot_id" uuid;--> statement-breakpoint
ALTER TABLE "entries" ADD COLUMN "cut_snapshot" "pg_snapshot";--> statement-breakpoint
CREATE INDEX "credit_lots_account_status_order" ON "credit_lots" USING btree ("account_id","status","priority","expires_sort","entry_seq");--> statement-breakpoint
CREATE INDEX "credit_lots_account_order" ON "credit_lots" USING btree ("account_id","priority","expires_sort","entry_seq");--> statement-breakpoint
CREATE INDEX "credit_lots_account_expiring" ON "credit_lots" USING btree ("account_id","expires_sort") WHERE "credit_lots"."status" = 'open' AND "credit_lots"."expires_at" IS NOT NULL;--> statement-breakpoint
CREATE INDEX "credit_lots_due" ON "credit_lots" USING btree ("expires_sort") WHERE "credit_lots"."status" = 'open' AND "credit_lots"."expires_at" IS NOT NULL;--> statement-breakpoint
ALTER TABLE "balance_events" ADD CONSTRAINT "balance_events_type_known" CHECK ("balance_events"."type" IN ('balance_restored', 'balance_depleted', 'credits_expired'));--> statement-breakpoint
ALTER TABLE "entries" ADD CONSTRAINT "entries_priority_range" CHECK ("entries"."priority" BETWEEN 0 AND 100);--> statement-breakpoint
ALTER TABLE "entries" ADD CONSTRAINT "entries_expiration_names_lot" CHECK (("entries"."type" = 'expiration') = ("entries"."lot_id" IS NOT NULL AND "entries"."cut_snapshot" IS NOT NULL));--> statement-breakpoint
ALTER TABLE "entries" ADD CONSTRAINT "entries_type_known" CHECK ("entries"."type" IN ('purchase', 'grant', 'refund', 'bonus', 'usage', 'removal', 'reversal', 'transfer_out', 'transfer_in', 'adjustment', 'expiration'));--> statement-breakpoint
ALTER TABLE "entries" ADD CONSTRAINT "entries_delta_sign" CHECK ("entries"."delta" = CASE WHEN "entries"."type" IN ('usage', 'removal', 'reversal', 'transfer_out', 'expiration') THEN -"entries"."amount" WHEN "entries"."type" = 'adjustment' AND "entries"."delta" < 0 THEN -"entries"."amount" ELSE "entries"."amount" END);