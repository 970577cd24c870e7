CREATE TABLE "auto_topup_requests" (
	"account_id" text NOT NULL,
	"id" uuid NOT NULL,
	"amount" numeric(25, 9) NOT NULL,
	"balance" numeric NOT NULL,
	"requested_at" timestamp with time zone NOT NULL,
	"expires_at" timestamp with time zone NOT NULL,
	CONSTRAINT "auto_topup_requests_pkey" PRIMARY KEY("account_id","id")
);
--> statement-breakpoint
CREATE TABLE "auto_topup_rules" (
	"account_id" text PRIMARY KEY NOT NULL,
	"threshold" numeric(25, 9) NOT NULL,
	"amount" numeric(25, 9),
	"target_balance" numeric(25, 9),
	"monthly_limit" numeric(25, 9) NOT NULL,
	"enabled" boolean NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	"open_request_id" uuid,
	"open_request_expires_at" timestamp with time zone,
	"evaluated_snapshot" "pg_snapshot",
	"evaluated_at" timestamp with time zone,
	CONSTRAINT "auto_topup_rules_amount_or_target" CHECK (("auto_topup_rules"."amount" IS NULL) <> ("auto_topup_rules"."target_balance" IS NULL)),
	CONSTRAINT "auto_topup_rules_target_above_threshold" CHECK ("auto_topup_rules"."target_balance" IS NULL OR "auto_topup_rules"."target_balance" > "auto_topup_rules"."threshold"),
	CONSTRAINT "auto_topup_rules_positive" CHECK ("auto_topup_rules"."monthly_limit" > 0 AND ("auto_topup_rules"."amount" IS NULL OR "auto_topup_rules"."amount" > 0))
);
--> statement-breakpoint
CREATE TABLE "stripe_events" (
	"id" text PRIMARY KEY NOT NULL,
	"type" text NOT NULL,
	"outcome" text NOT NULL,
	"account_id" text,
	"payment_intent_id" text,
	"entry_id" uuid,
	"detail" text,
	"received_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "stripe_payments" (
	"payment_intent_id" text PRIMARY KEY NOT NULL,
	"account_id" text NOT NULL,
	"entry_id" uuid NOT NULL,
	"currency" text NOT NULL,
	"amount_minor" bigint NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "balance_events" DROP CONSTRAINT "balance_events_type_known";--> statement-breakpoint
ALTER TABLE "balance_events" ADD COLUMN "request_id" uuid;--> statement-breakpoint
CREATE INDEX "auto_topup_requests_account_requested_at" ON "auto_topup_requests" USING btree ("account_id","requested_at");--> statement-breakpoint
CREATE INDEX "stripe_events_received_at" ON "stripe_events" USING btree ("received_at");--> statement-breakpoint
ALTER TABLE "balance_events" ADD CONSTRAINT "balance_events_type_known" CHECK ("balance_events"."type" IN ('balance_restored', 'balance_depleted', 'credits_expired', 'auto_topup_requested'));