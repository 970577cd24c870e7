CREATE TABLE "plan_subscriptions" (
	"account_id" text PRIMARY KEY NOT NULL,
	"plan_id" text NOT NULL,
	"anchor" timestamp with time zone NOT NULL,
	"status" text NOT NULL,
	"next_renewal_at" timestamp with time zone,
	"claim_expires_at" timestamp with time zone,
	"granted_period_start" timestamp with time zone,
	"granted_period_end" timestamp with time zone,
	"granted_entry_id" uuid,
	"granted_plan_id" text,
	"created_at" timestamp with time zone NOT NULL,
	"updated_at" timestamp with time zone NOT NULL,
	"canceled_at" timestamp with time zone,
	CONSTRAINT "plan_subscriptions_status_known" CHECK ("plan_subscriptions"."status" IN ('active', 'canceled')),
	CONSTRAINT "plan_subscriptions_due_when_active" CHECK (("plan_subscriptions"."status" = 'active') = ("plan_subscriptions"."next_renewal_at" IS NOT NULL))
);
--> statement-breakpoint
CREATE TABLE "plans" (
	"id" text PRIMARY KEY NOT NULL,
	"name" text NOT NULL,
	"credits" numeric(25, 9) NOT NULL,
	"period_kind" text NOT NULL,
	"period_days" smallint,
	"rollover_max" numeric(25, 9),
	"priority" smallint NOT NULL,
	"metadata" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"archived_at" timestamp with time zone,
	"created_at" timestamp with time zone NOT NULL,
	"updated_at" timestamp with time zone NOT NULL,
	CONSTRAINT "plans_id_format" CHECK ("plans"."id" ~ '^[A-Za-z0-9._:@-]{1,128}$'),
	CONSTRAINT "plans_credits_range" CHECK ("plans"."credits" > 0 AND "plans"."credits" <= 1000000000000000),
	CONSTRAINT "plans_period_known" CHECK ("plans"."period_kind" IN ('day', 'week', 'month', 'days')),
	CONSTRAINT "plans_period_days_range" CHECK (("plans"."period_kind" = 'days') = ("plans"."period_days" IS NOT NULL) AND ("plans"."period_days" IS NULL OR "plans"."period_days" BETWEEN 1 AND 366)),
	CONSTRAINT "plans_rollover_range" CHECK ("plans"."rollover_max" IS NULL OR ("plans"."rollover_max" > 0 AND "plans"."rollover_max" <= "plans"."credits")),
	CONSTRAINT "plans_priority_range" CHECK ("plans"."priority" BETWEEN 0 AND 100)
);
--> statement-breakpoint
CREATE INDEX "plan_subscriptions_due" ON "plan_subscriptions" USING btree ("next_renewal_at") WHERE "plan_subscriptions"."next_renewal_at" IS NOT NULL;--> statement-breakpoint
CREATE INDEX "plan_subscriptions_plan" ON "plan_subscriptions" USING btree ("plan_id","account_id");