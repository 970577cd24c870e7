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
  /** Levels of objects and arrays in metadata, the metadata object itself being the first. */
  metadata_depth_max: 16,
  metadata_key_length_max: 128,
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

/** Every key and string value, at any depth, is storable text. Run only on values whose depth was checked. */
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

/** Whether `value` has more than `limit` levels of objects and arrays; stops descending as soon as it does. */
function depthExceeds(value: unknown, limit: number): boolean {
  if (value === null || typeof value !== "object") return false;
  if (limit === 0) return true;
  const inner = Array.isArray(value) ? value : Object.values(value);
  return inner.some((item) => depthExceeds(item, limit - 1));
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * Checked on the object as the client sent it, not on a copy: zod's record would copy it and drop a `__proto__`
 * key, and a ledger stores what it was sent (the key is data, and part of the request hash). The OpenAPI entry
 * states every rule the refinement enforces.
 */
export const MetadataSchema = z
  .custom<Record<string, unknown>>(isPlainObject, { message: "must be a JSON object" })
  .superRefine((value, context) => {
    const keys = Object.keys(value);
    if (keys.length > LIMITS.metadata_keys_max) {
      context.addIssue({ code: "custom", message: `must have at most ${LIMITS.metadata_keys_max} keys` });
    }
    if (keys.some((key) => key.length > LIMITS.metadata_key_length_max)) {
      context.addIssue({ code: "custom", message: `keys must be at most ${LIMITS.metadata_key_length_max} characters` });
    }
    // Depth first: every later check recurses, and JSON.stringify would overflow the stack on a deep enough value.
    if (depthExceeds(value, LIMITS.metadata_depth_max)) {
      context.addIssue({ code: "custom", message: `must be nested at most ${LIMITS.metadata_depth_max} levels deep` });
      return;
    }
    if (Buffer.byteLength(JSON.stringify(value)) > LIMITS.metadata_bytes_max) {
      context.addIssue({ code: "custom", message: `must serialize to at most ${LIMITS.metadata_bytes_max} bytes of JSON` });
    }
    if (!storableJson(value)) context.addIssue({ code: "custom", message: STORABLE_TEXT_MESSAGE });
  })
  .openapi({
    type: "object",
    additionalProperties: {},
    maxProperties: LIMITS.metadata_keys_max,
    description:
      `Free-form JSON object, stored exactly as sent (every key, \`__proto__\` included): at most ${LIMITS.metadata_keys_max} keys of at most ` +
      `${LIMITS.metadata_key_length_max} characters, at most ${LIMITS.metadata_bytes_max} bytes of JSON, nested at most ${LIMITS.metadata_depth_max} ` +
      "levels (the object itself is the first), no U+0000 or unpaired surrogates in any key or string. As everywhere in a body, a key twice " +
      "in one object or a whole number beyond ±(2^53 − 1) is refused.",
    example: { model: "gpt-x", tokens: 812 },
  });

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
    hold_id: z.uuid().optional().openapi({ description: "Hold captures only: the hold this usage closed." }),
    priority: z.number().int().optional().openapi({ description: "A credit's lot priority, when it was given one." }),
    expires_at: z.iso.datetime().optional().openapi({ description: "A credit's expiry, when it has one." }),
    lot_id: z.uuid().optional().openapi({ description: "An expiration's lot: the id of the credit entry it ended." }),
    meter: z.string().optional().openapi({ description: "Priced usage only: the meter the usage was posted for." }),
    quantities: z
      .record(z.string(), z.number().int())
      .optional()
      .openapi({ description: "Priced usage only: the quantities posted, e.g. tokens in and out." }),
    price_version: z
      .number()
      .int()
      .optional()
      .openapi({ description: "Priced usage only: the version of the meter's price that `amount` was computed from." }),
  })
  .openapi("Entry");

export const AccountSchema = z
  .object({
    id: z.string(),
    metadata: z.record(z.string(), z.unknown()),
    created_at: z.iso.datetime(),
  })
  .openapi("Account");

/** The balance less the account's active, unexpired holds; it may be negative (usage is never refused). */
export const AvailableSchema = z.string().openapi({
  description: "The balance less the account's active holds. Holds never change the balance itself.",
  example: "10.5",
});

export const AccountWithBalanceSchema = AccountSchema.extend({ balance: z.string(), available: AvailableSchema }).openapi(
  "AccountWithBalance",
);

export const ExpiringNextSchema = z
  .object({
    expires_at: z.iso.datetime(),
    amount: z.string().openapi({ description: "What remains, now, of the lots that expire at expires_at." }),
  })
  .nullable()
  .openapi("ExpiringNext", { description: "The earliest future expiry of the account's credit lots (null if none)." });

export const BalanceSchema = z
  .object({
    account_id: z.string(),
    balance: z.string().openapi({ pattern: SIGNED_AMOUNT_PATTERN, example: "12.5" }),
    available: AvailableSchema,
    expiring_next: ExpiringNextSchema,
  })
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

/** RFC 3339: a date, a time with seconds, an optional fraction, and a zone (Z or an offset). */
export const RFC_3339 = /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$/;

/** A lot's expiry (src/ledger/lots/); that it lies in the future is checked against the ledger's clock. */
export const ExpiresAtSchema = z
  .string()
  .max(40)
  .refine((value) => RFC_3339.test(value) && !Number.isNaN(Date.parse(value)), "must be an RFC 3339 date-time, e.g. 2027-01-31T00:00:00Z")
  .openapi({ description: "When the lot's remaining amount expires (RFC 3339, in the future). Stored to the millisecond.", example: "2027-01-31T00:00:00Z" });

export const LotPrioritySchema = z
  .number()
  .int()
  .min(0)
  .max(100)
  .openapi({ description: "Consumption priority, 0-100; lower is consumed first. Default 50.", example: 10 });
