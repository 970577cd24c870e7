import { z } from "@hono/zod-openapi";
import { AMOUNT_PROBLEM_MESSAGES, formatNanos, parseAmount } from "../ledger/core/amount.js";
import { CREDIT_TYPES, ENTRY_TYPES } from "../db/schema.js";

/** Limits on every string and object a client can send. */
export const LIMITS = {
  idempotency_key_length_max: 255,
  description_length_max: 1000,
  metadata_bytes_max: 4096,
  metadata_keys_max: 64,
  cursor_length_max: 512,
  page_size_max: 500,
  page_size_default: 50,
} as const;

export const AccountIdSchema = z
  .string()
  .regex(/^[A-Za-z0-9._:@-]{1,128}$/, "must be 1-128 characters of A-Z a-z 0-9 . _ : @ -")
  .openapi({ example: "org_42" });

/** How tally writes an amount it answers with (balances and deltas may be negative). */
export const SIGNED_AMOUNT_PATTERN = "^-?(0|[1-9][0-9]*)(\\.[0-9]{1,9})?$";

export const AmountSchema = z
  .string()
  .max(40)
  .superRefine((value, context) => {
    const parsed = parseAmount(value);
    if ("problem" in parsed) context.addIssue({ code: "custom", message: AMOUNT_PROBLEM_MESSAGES[parsed.problem] });
  })
  .openapi({
    description: "Decimal string, greater than 0 and at most 1e15, with up to 9 fractional digits.",
    pattern: "^(0|[1-9][0-9]{0,15})(\\.[0-9]{1,9})?$",
    example: "0.000000405",
  });

/** The nano-credits of an amount that AmountSchema accepted. */
export function amountNanos(value: string): bigint {
  const parsed = parseAmount(value);
  if (!("nanos" in parsed)) throw new Error("amountNanos called on an unvalidated amount");
  return parsed.nanos;
}

/** The canonical spelling of an amount that AmountSchema accepted: "1.50" becomes "1.5". */
export function canonicalAmount(value: string): string {
  return formatNanos(amountNanos(value));
}

export const IdempotencyKeySchema = z
  .string()
  .min(1)
  .max(LIMITS.idempotency_key_length_max)
  .regex(/^[\x21-\x7e]+$/, "must be printable ASCII without spaces")
  .openapi({ example: "req_01J9ZP3K6X" });

/**
 * PostgreSQL text and jsonb cannot hold U+0000, and a lone UTF-16 surrogate would be stored as U+FFFD: both are
 * refused here rather than failing (or silently changing) at insert.
 */
function storableText(value: string): boolean {
  return !value.includes("\u0000") && value.isWellFormed();
}
const STORABLE_TEXT_MESSAGE = "must not contain U+0000 or unpaired surrogates";

/** Every key and string value, at any depth, is storable text. Depth is already bounded by the byte limit. */
function storableJson(value: unknown): boolean {
  if (typeof value === "string") return storableText(value);
  if (Array.isArray(value)) return value.every(storableJson);
  if (value !== null && typeof value === "object") {
    return Object.entries(value).every(([key, inner]) => storableText(key) && storableJson(inner));
  }
  return true;
}

export const DescriptionSchema = z
  .string()
  .max(LIMITS.description_length_max)
  .refine(storableText, STORABLE_TEXT_MESSAGE);

export const MetadataSchema = z
  .record(z.string().max(128), z.unknown())
  .refine((value) => Object.keys(value).length <= LIMITS.metadata_keys_max, {
    message: `must have at most ${LIMITS.metadata_keys_max} keys`,
  })
  .refine((value) => Buffer.byteLength(JSON.stringify(value)) <= LIMITS.metadata_bytes_max, {
    message: `must serialize to at most ${LIMITS.metadata_bytes_max} bytes of JSON`,
  })
  .refine(storableJson, { message: STORABLE_TEXT_MESSAGE })
  .openapi({ description: "Free-form JSON object, at most 4096 bytes.", example: { model: "gpt-x", tokens: 812 } });

export const EntryTypeSchema = z.enum(ENTRY_TYPES);
export const CreditTypeSchema = z.enum(CREDIT_TYPES);

export const EntrySchema = z
  .object({
    id: z.uuid(),
    account_id: z.string(),
    type: EntryTypeSchema,
    amount: z.string().openapi({ pattern: SIGNED_AMOUNT_PATTERN, example: "0.000000405" }),
    delta: z.string().openapi({ description: "Signed change to the balance.", pattern: SIGNED_AMOUNT_PATTERN, example: "-0.000000405" }),
    idempotency_key: z.string(),
    batch_id: z.uuid().nullable(),
    description: z.string().nullable(),
    metadata: z.record(z.string(), z.unknown()).nullable(),
    created_at: z.iso.datetime(),
    original_entry_id: z.uuid().optional().openapi({ description: "Refunds and reversals only: the entry corrected." }),
    counterpart_entry_id: z.uuid().optional().openapi({ description: "Transfer legs only: the other leg." }),
    transfer_id: z.uuid().optional().openapi({ description: "Transfer legs only: the transfer both legs belong to." }),
  })
  .openapi("Entry");

export const AccountSchema = z
  .object({
    id: z.string(),
    metadata: z.record(z.string(), z.unknown()),
    created_at: z.iso.datetime(),
  })
  .openapi("Account");

export const AccountWithBalanceSchema = AccountSchema.extend({ balance: z.string() }).openapi("AccountWithBalance");

export const BalanceSchema = z
  .object({ account_id: z.string(), balance: z.string().openapi({ pattern: SIGNED_AMOUNT_PATTERN, example: "12.5" }) })
  .openapi("Balance");

export const AccountIdParamsSchema = z.object({
  id: AccountIdSchema.openapi({ param: { name: "id", in: "path" } }),
});

export const PageQuerySchema = z.strictObject({
  limit: z.coerce
    .number()
    .int()
    .min(1)
    .max(LIMITS.page_size_max)
    .default(LIMITS.page_size_default)
    .openapi({ param: { name: "limit", in: "query" }, example: 50 }),
  cursor: z
    .string()
    .max(LIMITS.cursor_length_max)
    .optional()
    .openapi({ param: { name: "cursor", in: "query" } }),
});

export const REPLAYED_HEADER = "Idempotent-Replayed";
