import { randomBytes } from "node:crypto";
import type { Queryable } from "../db/port.js";

/** The server_secrets row that holds the generated signing key. */
const SIGNING_KEY_NAME = "signing_key";
/** An operator-supplied key must be at least this long, as the other secrets in config.ts. */
export const SIGNING_KEY_LENGTH_MIN = 32;

/**
 * The key that signs what tally hands to clients and later takes back (cursors; later, console form tokens).
 *
 * An operator-supplied key (TALLY_SIGNING_KEY) wins. Otherwise the key is a random 256-bit secret created the first
 * time any process asks and kept in the database, so every process sharing the database signs and verifies with the
 * same key, it survives restarts, and a new user configures nothing. Two processes starting at once both try the
 * INSERT; ON CONFLICT DO NOTHING makes the loser wait for the winner's commit and keep the winner's row, and the
 * SELECT, a separate statement under READ COMMITTED, then reads that one row in both.
 */
export async function loadSigningKey(database: Queryable, configured: string | undefined): Promise<Buffer> {
  if (configured !== undefined) {
    if (configured.length < SIGNING_KEY_LENGTH_MIN) throw new Error(`the signing key must be at least ${SIGNING_KEY_LENGTH_MIN} characters`);
    return Buffer.from(configured, "utf8");
  }
  await database.query("INSERT INTO server_secrets (name, secret) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING", [
    SIGNING_KEY_NAME,
    randomBytes(32).toString("base64url"),
  ]);
  const [row] = await database.query<{ secret: string }>("SELECT secret FROM server_secrets WHERE name = $1", [SIGNING_KEY_NAME]);
  if (!row) throw new Error("the signing key row vanished after it was created");
  return Buffer.from(row.secret, "base64url");
}
