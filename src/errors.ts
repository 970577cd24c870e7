/**
 * The one catalogue of error codes. The HTTP layer maps each code to its status and title at run time and also
 * builds the documented OpenAPI responses from it, so what is documented and what is sent cannot drift apart.
 * Codes are stable: clients branch on them. Titles are fixed text; anything variable goes in `detail`.
 */
export const ERROR_CATALOGUE = {
  validation_failed: { status: 400, title: "The request is not valid" },
  invalid_json: { status: 400, title: "The request body is not valid JSON" },
  invalid_cursor: { status: 400, title: "The cursor is not valid" },
  unauthorized: { status: 401, title: "Credentials are missing or not valid" },
  forbidden: { status: 403, title: "The credentials do not allow this request" },
  account_not_found: { status: 404, title: "The account does not exist" },
  not_found: { status: 404, title: "No such resource" },
  idempotency_key_reused: { status: 409, title: "The idempotency key was already used for a different request" },
  insufficient_balance: { status: 409, title: "The balance is too low for this debit" },
  payload_too_large: { status: 413, title: "The request body is too large" },
  unsupported_media_type: { status: 415, title: "The request body must be application/json" },
  internal_error: { status: 500, title: "Internal error" },
  service_unavailable: { status: 503, title: "The service cannot reach its database" },
  stream_limit_reached: { status: 503, title: "This process serves as many event streams as it allows; retry later" },
  request_timeout: { status: 504, title: "The request took too long" },
  exceeds_original: { status: 409, title: "The refund or reversal exceeds what is left of the original entry" },
  entry_not_refundable: { status: 409, title: "This type of entry cannot be refunded or reversed" },
  nothing_to_adjust: { status: 409, title: "The balance already equals the target" },
  hold_not_found: { status: 404, title: "The hold does not exist" },
  hold_not_active: { status: 409, title: "The hold is already closed by a different capture or a release" },
  too_many_active_holds: { status: 409, title: "The account has as many active holds as it may" },
  database_timeout: { status: 503, title: "A database statement or transaction ran past its time limit; retry later" },
  database_conflict: { status: 503, title: "The database aborted the transaction to resolve a conflict (such as a deadlock); retry" },
  too_many_failed_authentications: { status: 429, title: "Too many failed authentications from this address; retry later" },
  price_not_found: { status: 422, title: "The meter has no price in force; nothing was written" },
  zero_cost_usage: { status: 422, title: "The usage costs nothing under the price in force; nothing was written" },
  webhook_endpoint_not_found: { status: 404, title: "The webhook endpoint does not exist" },
  webhook_delivery_not_found: { status: 404, title: "The webhook delivery does not exist" },
  too_many_webhook_endpoints: { status: 409, title: "tally keeps as many webhook endpoints as it allows" },
  invalid_signature: { status: 400, title: "The webhook signature is missing, does not match the body, or is too old" },
  plan_not_found: { status: 404, title: "The plan does not exist" },
  plan_exists: { status: 409, title: "A plan with this id already exists" },
  plan_archived: { status: 409, title: "The plan is archived and takes no new subscriptions" },
  subscription_not_found: { status: 404, title: "The account has no subscription" },
} as const satisfies Record<string, { status: number; title: string }>;

export type ErrorCode = keyof typeof ERROR_CATALOGUE;

/** An operating error with a catalogued code: bad input, a conflict, a missing account. Never a programmer error. */
export class TallyError extends Error {
  constructor(
    readonly code: ErrorCode,
    readonly detail: string,
    /** Extra members of the problem document, e.g. the balance and deficit of an insufficient balance. */
    readonly extensions: Record<string, unknown> = {},
  ) {
    super(detail);
    this.name = "TallyError";
  }
}
