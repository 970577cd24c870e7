ALTER TABLE "entries" DROP CONSTRAINT "entries_type_known";--> statement-breakpoint
ALTER TABLE "entries" DROP CONSTRAINT "entries_delta_sign";--> statement-breakpoint
ALTER TABLE "entries" ADD COLUMN "original_entry_id" uuid;--> statement-breakpoint
ALTER TABLE "entries" ADD COLUMN "counterpart_entry_id" uuid;--> statement-breakpoint
ALTER TABLE "entries" ADD COLUMN "transfer_id" uuid;--> statement-breakpoint
ALTER TABLE "entries" ADD CONSTRAINT "entries_links_by_type" CHECK (("entries"."original_entry_id" IS NULL OR "entries"."type" IN ('refund', 'reversal')) AND (("entries"."transfer_id" IS NOT NULL AND "entries"."counterpart_entry_id" IS NOT NULL) = ("entries"."type" IN ('transfer_out', 'transfer_in'))) AND ("entries"."transfer_id" IS NULL) = ("entries"."counterpart_entry_id" IS NULL));--> statement-breakpoint
ALTER TABLE "entries" ADD CONSTRAINT "entries_type_known" CHECK ("entries"."type" IN ('purchase', 'grant', 'refund', 'bonus', 'usage', 'removal', 'reversal', 'transfer_out', 'transfer_in', 'adjustment'));--> statement-breakpoint
ALTER TABLE "entries" ADD CONSTRAINT "entries_delta_sign" CHECK ("entries"."delta" = CASE WHEN "entries"."type" IN ('usage', 'removal', 'reversal', 'transfer_out') THEN -"entries"."amount" WHEN "entries"."type" = 'adjustment' AND "entries"."delta" < 0 THEN -"entries"."amount" ELSE "entries"."amount" END);