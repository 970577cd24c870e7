ALTER TABLE "balance_watches" ADD COLUMN "credits_boundary" "xid8";--> statement-breakpoint
ALTER TABLE "balance_watches" ADD COLUMN "credits_pending" numeric DEFAULT '0' NOT NULL;