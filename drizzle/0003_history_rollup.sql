CREATE TABLE "batch_aggregates" (
	"account_id" text NOT NULL,
	"batch_id" uuid NOT NULL,
	"amount_total" numeric NOT NULL,
	"delta_total" numeric NOT NULL,
	"row_count" bigint NOT NULL,
	"first_seq" bigint NOT NULL,
	"last_seq" bigint NOT NULL,
	"first_at" timestamp with time zone NOT NULL,
	"last_at" timestamp with time zone NOT NULL,
	"max_xid" "xid8" NOT NULL,
	CONSTRAINT "batch_aggregates_pkey" PRIMARY KEY("account_id","batch_id")
);
--> statement-breakpoint
CREATE TABLE "rollup_boundaries" (
	"account_id" text PRIMARY KEY NOT NULL,
	"xid_boundary" "xid8" NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE INDEX "batch_aggregates_account_last_seq" ON "batch_aggregates" USING btree ("account_id","last_seq");--> statement-breakpoint
CREATE INDEX "batch_aggregates_account_max_xid" ON "batch_aggregates" USING btree ("account_id","max_xid");--> statement-breakpoint
CREATE INDEX "entries_account_unbatched_seq" ON "entries" USING btree ("account_id","seq") WHERE "entries"."batch_id" IS NULL;--> statement-breakpoint
CREATE INDEX "entries_account_batch_seq" ON "entries" USING btree ("account_id","batch_id","seq") WHERE "entries"."batch_id" IS NOT NULL;