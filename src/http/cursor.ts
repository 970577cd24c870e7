import { z } from "zod";
import { TallyError } from "../errors.js";
import type { Signer } from "../signing/signer.js";

/** How long a cursor stays valid after it was issued; a walk older than this starts again from the first page. */
export const CURSOR_LIFETIME_MS = 24 * 60 * 60 * 1000;
const CURSOR_PURPOSE = "cursor";

/**
 * Cursors are opaque to clients and signed (src/signing/): bound to the listing that issued them and to its
 * parameters (`binding`, e.g. the account and the filters), and valid for CURSOR_LIFETIME_MS. Everything a cursor
 * carries (a snapshot, a position, a running balance, a total) is the server's own word, so it is trusted only
 * after the signature checks; the schema check after that guards against a server that changed its cursor shape.
 */
export function encodeCursor(signer: Signer, binding: unknown, position: Record<string, unknown>): Promise<string> {
  return signer.sign(CURSOR_PURPOSE, JSON.stringify(binding), position, CURSOR_LIFETIME_MS);
}

export async function decodeCursor<T>(signer: Signer, binding: unknown, cursor: string, schema: z.ZodType<T>): Promise<T> {
  const verified = await signer.verify(CURSOR_PURPOSE, JSON.stringify(binding), cursor);
  if (!verified.ok) {
    throw new TallyError(
      "invalid_cursor",
      verified.reason === "expired"
        ? "the cursor has expired (cursors are valid for 24 hours); start again without one"
        : "the cursor was not issued by this listing with these parameters; start again without one",
    );
  }
  const parsed = schema.safeParse(verified.data);
  if (!parsed.success) throw new TallyError("invalid_cursor", "the cursor is from an older version of this listing; start again without one");
  return parsed.data;
}
