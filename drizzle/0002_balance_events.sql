CREATE TABLE "balance_events" (
	"id" bigint GENERATED ALWAYS AS IDENTITY (sequence name "balance_events_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"account_id" text NOT NULL,
	"type" text NOT NULL,
	"balance" numeric NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "balance_events_pkey" PRIMARY KEY("account_id","id"),
	CONSTRAINT "balance_events_type_known" CHECK ("balance_events"."type" IN ('balance_restored', 'balance_depleted'))
);
--> statement-breakpoint
CREATE TABLE "balance_watches" (
	"account_id" text PRIMARY KEY NOT NULL,
	"evaluated_snapshot" "pg_snapshot" NOT NULL,
	"depleted_since" timestamp with time zone,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE INDEX "balance_events_id" ON "balance_events" USING btree ("id");--> statement-breakpoint
CREATE INDEX "balance_events_created_at" ON "balance_events" USING btree ("created_at");