import { createHmac, timingSafeEqual } from "node:crypto";
import type { Queryable } from "../db/port.js";
import { loadSigningKey } from "./signing-key.js";

/**
 * Tokens tally hands to a client and later takes back: `<payload>.<mac>`, both base64url. The payload is JSON
 * `{ "e": expiry in epoch seconds, "d": data }`; the mac is HMAC-SHA256 over the purpose, the binding and the
 * payload, so a token is accepted only for the purpose and the binding (say, one listing and its parameters) it was
 * issued for, only before it expires, and only unaltered. Nothing in the payload is parsed before the mac matches.
 *
 * The payload is readable by whoever holds the token; sign data a client may see, never secrets.
 */

export type VerifyResult = { ok: true; data: unknown } | { ok: false; reason: "malformed" | "forged" | "expired" };

/** Tokens longer than this are refused before any work: nothing tally signs comes close. */
const TOKEN_LENGTH_MAX = 8192;
const MAC_LENGTH_BYTES = 32;

export interface Signer {
  sign(purpose: string, binding: string, data: unknown, lifetime_ms: number): Promise<string>;
  verify(purpose: string, binding: string, token: string): Promise<VerifyResult>;
}

function mac(key: Buffer, purpose: string, binding: string, payload: string): Buffer {
  // Lengths first, so no choice of purpose and binding can collide with another's concatenation.
  return createHmac("sha256", key).update(`tally-signed-v1\n${purpose.length}:${purpose}\n${binding.length}:${binding}\n${payload}`).digest();
}

/** A signer over a known key, with an injectable clock (epoch milliseconds) so expiry can be tested without waiting. */
export function createSigner(key: Buffer | (() => Promise<Buffer>), now: () => number = Date.now): Signer {
  let loaded: Promise<Buffer> | undefined;
  const getKey = (): Promise<Buffer> => {
    if (Buffer.isBuffer(key)) return Promise.resolve(key);
    // A failed load (the database unreachable) is not remembered, so the next request tries again.
    loaded ??= key().catch((error: unknown) => {
      loaded = undefined;
      throw error;
    });
    return loaded;
  };
  return {
    async sign(purpose, binding, data, lifetime_ms) {
      const payload = Buffer.from(JSON.stringify({ e: Math.ceil((now() + lifetime_ms) / 1000), d: data })).toString("base64url");
      return `${payload}.${mac(await getKey(), purpose, binding, payload).toString("base64url")}`;
    },
    async verify(purpose, binding, token) {
      if (token.length > TOKEN_LENGTH_MAX) return { ok: false, reason: "malformed" };
      const match = /^([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]{43})$/.exec(token);
      if (!match) return { ok: false, reason: "malformed" };
      const given = Buffer.from(match[2]!, "base64url");
      // base64url decoding is lenient about the last character's unused bits: compare the canonical re-encoding too.
      if (given.length !== MAC_LENGTH_BYTES || given.toString("base64url") !== match[2]) return { ok: false, reason: "malformed" };
      if (!timingSafeEqual(given, mac(await getKey(), purpose, binding, match[1]!))) return { ok: false, reason: "forged" };
      let parsed: unknown;
      try {
        parsed = JSON.parse(Buffer.from(match[1]!, "base64url").toString("utf8"));
      } catch {
        return { ok: false, reason: "malformed" };
      }
      if (typeof parsed !== "object" || parsed === null || !("e" in parsed) || typeof parsed.e !== "number" || !("d" in parsed)) {
        return { ok: false, reason: "malformed" };
      }
      if (now() >= parsed.e * 1000) return { ok: false, reason: "expired" };
      return { ok: true, data: parsed.d };
    },
  };
}

/** The signer a process uses: the configured key, or the one kept in the database, loaded on first use. */
export function databaseSigner(database: Queryable, options: { configured_key?: string; now?: () => number } = {}): Signer {
  return createSigner(() => loadSigningKey(database, options.configured_key), options.now);
}
