CREATE TABLE "accounts" (
	"id" text PRIMARY KEY NOT NULL,
	"metadata" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "accounts_id_format" CHECK ("accounts"."id" ~ '^[A-Za-z0-9._:@-]{1,128}$')
);
--> statement-breakpoint
CREATE TABLE "api_keys" (
	"id" text PRIMARY KEY NOT NULL,
	"name" text NOT NULL,
	"secret_hash" text NOT NULL,
	"scopes" text[] NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"revoked_at" timestamp with time zone,
	CONSTRAINT "api_keys_id_format" CHECK ("api_keys"."id" ~ '^[0-9a-f]{16}$')
);
--> statement-breakpoint
CREATE TABLE "balance_checkpoints" (
	"account_id" text PRIMARY KEY NOT NULL,
	"balance" numeric NOT NULL,
	"xid_boundary" "xid8" NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "entries" (
	"seq" bigint GENERATED ALWAYS AS IDENTITY (sequence name "entries_seq_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"id" uuid NOT NULL,
	"account_id" text NOT NULL,
	"type" text NOT NULL,
	"amount" numeric(25, 9) NOT NULL,
	"delta" numeric(25, 9) NOT NULL,
	"idempotency_key" text NOT NULL,
	"request_hash" text NOT NULL,
	"batch_id" uuid,
	"description" text,
	"metadata" jsonb,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"xid" "xid8" DEFAULT pg_current_xact_id() NOT NULL,
	CONSTRAINT "entries_pkey" PRIMARY KEY("account_id","seq"),
	CONSTRAINT "entries_type_known" CHECK ("entries"."type" IN ('purchase', 'grant', 'refund', 'bonus', 'usage', 'removal')),
	CONSTRAINT "entries_amount_range" CHECK ("entries"."amount" > 0 AND "entries"."amount" <= 1000000000000000),
	CONSTRAINT "entries_delta_sign" CHECK ("entries"."delta" = CASE WHEN "entries"."type" IN ('usage', 'removal') THEN -"entries"."amount" ELSE "entries"."amount" END)
);
--> statement-breakpoint
CREATE UNIQUE INDEX "entries_account_idempotency_key" ON "entries" USING btree ("account_id","idempotency_key");--> statement-breakpoint
CREATE INDEX "entries_account_xid" ON "entries" USING btree ("account_id","xid");--> statement-breakpoint
CREATE INDEX "entries_id" ON "entries" USING btree ("id");