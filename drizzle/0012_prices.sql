CREATE TABLE "prices" (
	"meter" text NOT NULL,
	"version" integer NOT NULL,
	"unit_prices" jsonb NOT NULL,
	"per" integer NOT NULL,
	"valid_from" timestamp with time zone NOT NULL,
	"created_at" timestamp with time zone DEFAULT date_trunc('milliseconds', now()) NOT NULL,
	CONSTRAINT "prices_pkey" PRIMARY KEY("meter","version"),
	CONSTRAINT "prices_meter_format" CHECK ("prices"."meter" ~ '^[A-Za-z0-9._:/@-]{1,128}$'),
	CONSTRAINT "prices_version_positive" CHECK ("prices"."version" > 0),
	CONSTRAINT "prices_per_known" CHECK ("prices"."per" IN (1, 1000, 1000000)),
	CONSTRAINT "prices_unit_prices_object" CHECK (jsonb_typeof("prices"."unit_prices") = 'object')
);
--> statement-breakpoint
ALTER TABLE "entries" ADD COLUMN "meter" text;--> statement-breakpoint
ALTER TABLE "entries" ADD COLUMN "quantities" jsonb;--> statement-breakpoint
ALTER TABLE "entries" ADD COLUMN "price_version" integer;