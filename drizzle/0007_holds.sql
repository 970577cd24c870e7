CREATE TABLE "holds" (
	"id" uuid NOT NULL,
	"account_id" text NOT NULL,
	"amount" numeric(25, 9) NOT NULL,
	"status" text DEFAULT 'active' NOT NULL,
	"idempotency_key" text NOT NULL,
	"request_hash" text NOT NULL,
	"description" text,
	"metadata" jsonb,
	"created_at" timestamp with time zone NOT NULL,
	"expires_at" timestamp with time zone NOT NULL,
	"closed_at" timestamp with time zone,
	"capture_hash" text,
	"captured_amount" numeric(25, 9),
	CONSTRAINT "holds_pkey" PRIMARY KEY("account_id","id"),
	CONSTRAINT "holds_status_known" CHECK ("holds"."status" IN ('active', 'captured', 'released')),
	CONSTRAINT "holds_amount_range" CHECK ("holds"."amount" > 0 AND "holds"."amount" <= 1000000000000000),
	CONSTRAINT "holds_closed_consistent" CHECK (("holds"."status" = 'active') = ("holds"."closed_at" IS NULL) AND ("holds"."status" = 'captured') = ("holds"."captured_amount" IS NOT NULL))
);
--> statement-breakpoint
ALTER TABLE "entries" ADD COLUMN "hold_id" uuid;--> statement-breakpoint
CREATE UNIQUE INDEX "holds_account_idempotency_key" ON "holds" USING btree ("account_id","idempotency_key");--> statement-breakpoint
CREATE INDEX "holds_id" ON "holds" USING btree ("id");--> statement-breakpoint
CREATE INDEX "holds_account_active_expires_at" ON "holds" USING btree ("account_id","expires_at") WHERE "holds"."status" = 'active';--> statement-breakpoint
CREATE INDEX "holds_account_status_id" ON "holds" USING btree ("account_id","status","id");