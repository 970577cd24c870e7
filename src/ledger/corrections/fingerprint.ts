import { createHash } from "node:crypto";
import { canonicalJson } from "../core/entry.js";

/**
 * The request hash a correction's idempotency key is bound to. Corrections fingerprint the request as the client
 * sent it, not the row it became: a refund without an amount, or an adjustment to a target, becomes a different
 * row depending on when it runs, and its retry must still be recognised as the same request.
 */
export function correctionFingerprint(request: Record<string, unknown>): string {
  return createHash("sha256").update(canonicalJson(request)).digest("hex");
}
