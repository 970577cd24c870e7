import { z } from "zod";
import { TallyError } from "../../errors.js";
import { formatNanos } from "../../ledger/core/amount.js";
import type { LedgerContext } from "../../ledger/core/context.js";
import { reverseToTotal } from "../../ledger/corrections/reverse-to-total.js";
import { postCredit } from "../../ledger/posting/credits.js";
import { minorToCreditNanos } from "./amounts.js";
import { recordStripeEvent, type StripeEventRecord, type StripeOutcome } from "./events.js";

/**
 * Turns verified Stripe events into ledger entries:
 *   - checkout.session.completed (payment_status "paid") and checkout.session.async_payment_succeeded, and
 *     payment_intent.succeeded: one purchase for metadata.tally_account_id, idempotency key = the payment intent id.
 *     Both events of one payment build the same request (account, amount, description, metadata), so whichever
 *     arrives second is a replay of the first: one purchase.
 *   - charge.refunded: a reversal of that purchase up to the charge's amount_refunded (a running total), so a
 *     repeated, late or out-of-order report reverses nothing twice (ledger/corrections/reverse-to-total.ts).
 * Everything else is answered 200 and ignored. Events tally cannot act on (unknown account, refund of an unknown
 * payment, an idempotency conflict) are recorded in stripe_events and answered 200: Stripe would otherwise retry
 * them for days, and no retry can fix them.
 */

export interface StripeSettings {
  webhook_secret: string;
  /** Credits per major unit of the payment's currency (1 USD, 1 JPY), in nano-credits. */
  credits_per_unit_nanos: bigint;
}

export const ACCOUNT_METADATA_KEY = "tally_account_id";

const ACCOUNT_ID_PATTERN = /^[A-Za-z0-9._:@-]{1,128}$/;
const StripeId = z.string().min(1).max(255);
const Metadata = z.record(z.string(), z.string()).nullish();
const MinorAmount = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);

const CheckoutSession = z.object({
  payment_status: z.string(),
  payment_intent: z.union([StripeId, z.object({ id: StripeId })]).nullish(),
  amount_total: MinorAmount.nullish(),
  currency: z.string().min(3).max(3).nullish(),
  metadata: Metadata,
});
const PaymentIntent = z.object({
  id: StripeId,
  amount_received: MinorAmount,
  currency: z.string().min(3).max(3),
  metadata: Metadata,
});
const Charge = z.object({
  id: StripeId,
  payment_intent: z.union([StripeId, z.object({ id: StripeId })]).nullish(),
  amount_refunded: MinorAmount,
  currency: z.string().min(3).max(3),
});

export interface StripeEvent {
  id: string;
  type: string;
  data: { object: unknown };
}

export interface Handled {
  outcome: StripeOutcome;
  entry_id?: string;
}

interface Payment {
  payment_intent_id: string;
  account_id: string | undefined;
  amount_minor: bigint;
  currency: string;
}

export async function handleStripeEvent(context: LedgerContext, settings: StripeSettings, event: StripeEvent): Promise<Handled> {
  const base = { event_id: event.id, type: event.type };
  const finish = async (record: Omit<StripeEventRecord, "event_id" | "type">): Promise<Handled> => {
    await recordStripeEvent(context, { ...base, ...record });
    if (["unknown_account", "unknown_payment", "conflict", "malformed"].includes(record.outcome)) {
      context.logger.warn(
        { stripe_event_id: event.id, type: event.type, outcome: record.outcome, account_id: record.account_id, payment_intent_id: record.payment_intent_id },
        `Stripe event not applied: ${record.detail ?? record.outcome}`,
      );
    }
    return { outcome: record.outcome, ...(record.entry_id ? { entry_id: record.entry_id } : {}) };
  };
  switch (event.type) {
    case "checkout.session.completed":
    case "checkout.session.async_payment_succeeded": {
      const parsed = CheckoutSession.safeParse(event.data.object);
      if (!parsed.success) return finish({ outcome: "malformed", detail: "the checkout session lacks fields tally reads" });
      const session = parsed.data;
      const payment_intent_id = typeof session.payment_intent === "string" ? session.payment_intent : session.payment_intent?.id;
      if (session.payment_status !== "paid") return finish({ outcome: "not_paid", payment_intent_id, detail: `payment_status ${session.payment_status}` });
      if (!payment_intent_id || session.amount_total == null || !session.currency) {
        return finish({ outcome: "malformed", detail: "a paid checkout session without a payment intent, amount or currency" });
      }
      return credit(context, settings, finish, {
        payment_intent_id,
        account_id: session.metadata?.[ACCOUNT_METADATA_KEY],
        amount_minor: BigInt(session.amount_total),
        currency: session.currency,
      });
    }
    case "payment_intent.succeeded": {
      const parsed = PaymentIntent.safeParse(event.data.object);
      if (!parsed.success) return finish({ outcome: "malformed", detail: "the payment intent lacks fields tally reads" });
      const intent = parsed.data;
      return credit(context, settings, finish, {
        payment_intent_id: intent.id,
        account_id: intent.metadata?.[ACCOUNT_METADATA_KEY],
        amount_minor: BigInt(intent.amount_received),
        currency: intent.currency,
      });
    }
    case "charge.refunded": {
      const parsed = Charge.safeParse(event.data.object);
      if (!parsed.success) return finish({ outcome: "malformed", detail: "the charge lacks fields tally reads" });
      return reverse(context, settings, finish, parsed.data);
    }
    default:
      return { outcome: "ignored" };
  }
}

type Finish = (record: Omit<StripeEventRecord, "event_id" | "type">) => Promise<Handled>;

const PAYMENT_SQL = `
INSERT INTO stripe_payments (payment_intent_id, account_id, entry_id, currency, amount_minor)
VALUES ($1, $2, $3::uuid, $4, $5::bigint)
ON CONFLICT (payment_intent_id) DO NOTHING`;

async function credit(context: LedgerContext, settings: StripeSettings, finish: Finish, payment: Payment): Promise<Handled> {
  const { payment_intent_id, account_id } = payment;
  if (account_id === undefined || !ACCOUNT_ID_PATTERN.test(account_id)) {
    return finish({ outcome: "unknown_account", payment_intent_id, detail: `metadata.${ACCOUNT_METADATA_KEY} is missing or not an account id` });
  }
  if ((await context.known_accounts.missing(context.database, [account_id])).length > 0) {
    return finish({ outcome: "unknown_account", account_id, payment_intent_id, detail: `account ${account_id} does not exist` });
  }
  const currency = payment.currency.toLowerCase();
  const nanos = minorToCreditNanos(payment.amount_minor, currency, settings.credits_per_unit_nanos);
  if (nanos <= 0n) return finish({ outcome: "zero_amount", account_id, payment_intent_id, detail: `${payment.amount_minor} ${currency} is 0 credits` });
  let result;
  try {
    result = await postCredit(context, {
      account_id,
      type: "purchase",
      amount: formatNanos(nanos),
      // The payment intent id, as the issue and the billing side expect: both events of one payment share it.
      idempotency_key: payment_intent_id,
      batch_id: null,
      // Built from the payment alone, never from the event, so both events make the same request.
      description: `Stripe payment ${payment_intent_id}`,
      metadata: { stripe_payment_intent: payment_intent_id, currency, amount_minor: payment.amount_minor.toString() },
    });
  } catch (error) {
    if (error instanceof TallyError && error.code === "idempotency_key_reused") {
      return finish({ outcome: "conflict", account_id, payment_intent_id, detail: error.detail });
    }
    throw error;
  }
  await context.database.query(PAYMENT_SQL, [payment_intent_id, account_id, result.entry.id, currency, payment.amount_minor.toString()]);
  return finish({ outcome: result.replayed ? "already_credited" : "credited", account_id, payment_intent_id, entry_id: result.entry.id });
}

async function reverse(
  context: LedgerContext,
  settings: StripeSettings,
  finish: Finish,
  charge: z.infer<typeof Charge>,
): Promise<Handled> {
  const payment_intent_id = typeof charge.payment_intent === "string" ? charge.payment_intent : charge.payment_intent?.id;
  const [payment] = payment_intent_id
    ? await context.database.query<{ account_id: string; entry_id: string; currency: string }>(
        "SELECT account_id, entry_id::text AS entry_id, currency FROM stripe_payments WHERE payment_intent_id = $1",
        [payment_intent_id],
      )
    : [];
  if (!payment) {
    return finish({ outcome: "unknown_payment", payment_intent_id, detail: `charge ${charge.id} refunds a payment tally did not credit` });
  }
  const refunded_total = BigInt(charge.amount_refunded);
  const result = await reverseToTotal(context, {
    entry_id: payment.entry_id,
    reversed_total_nanos: minorToCreditNanos(refunded_total, payment.currency, settings.credits_per_unit_nanos),
    // One key per running total: the same report twice is a replay; a higher total reverses only the difference.
    idempotency_key: `stripe refund ${payment_intent_id} ${refunded_total}`,
    description: `Stripe refund of ${payment_intent_id} (${refunded_total} ${payment.currency} refunded in total)`,
    metadata: { stripe_charge: charge.id, stripe_payment_intent: payment_intent_id, amount_refunded_minor: refunded_total.toString() },
  });
  const account_id = payment.account_id;
  if (!result) return finish({ outcome: "nothing_to_reverse", account_id, payment_intent_id });
  return finish({ outcome: result.replayed ? "nothing_to_reverse" : "reversed", account_id, payment_intent_id, entry_id: result.entry.id });
}
