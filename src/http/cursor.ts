import { z } from "zod";
import { TallyError } from "../errors.js";

/** Cursors are opaque to clients: base64url of a small JSON document whose shape each listing defines. */
export function encodeCursor(position: Record<string, unknown>): string {
  return Buffer.from(JSON.stringify(position)).toString("base64url");
}

export function decodeCursor<T>(cursor: string, schema: z.ZodType<T>): T {
  try {
    return schema.parse(JSON.parse(Buffer.from(cursor, "base64url").toString("utf8")));
  } catch {
    throw new TallyError("invalid_cursor", "the cursor was not issued by this listing; start again without one");
  }
}
