import type { LedgerContext } from "../core/context.js";
import { evaluateCrossing } from "../events/crossings.js";
import type { EntryRequest } from "../core/entry.js";
import { postEntry, type PostResult } from "./posting.js";

/**
 * Posts a credit lock-free, then, after it has committed, evaluates whether the balance crossed back above zero.
 * A replay evaluates again: if a previous attempt committed the credit but died before its evaluation, the retry
 * the client makes with the same idempotency key still gets the gateway told. An evaluation that fails fails the
 * request (the credit stays committed), so the client retries and the replay evaluates.
 */
export async function postCredit(context: LedgerContext, request: EntryRequest): Promise<PostResult> {
  const result = await postEntry(context, request);
  await evaluateCrossing(context, request.account_id, { observed_at_or_below_zero: false });
  return result;
}
