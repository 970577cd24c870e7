import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from "node:crypto";
import type { Queryable } from "../db/port.js";
import { loadSigningKey } from "../signing/signing-key.js";

/**
 * Webhook signing secrets at rest. tally must be able to sign with a secret after it was shown, so it cannot keep a
 * hash as it does for service keys. Each secret is encrypted with AES-256-GCM under a key derived (HKDF-SHA256) from
 * the server's signing key (TALLY_SIGNING_KEY, or the one kept in server_secrets), with the endpoint id as
 * associated data, so a ciphertext copied onto another endpoint's row does not decrypt. With TALLY_SIGNING_KEY set,
 * a database dump alone reveals no webhook secret. Changing TALLY_SIGNING_KEY makes the stored secrets unreadable:
 * deliveries then fail with "secret unreadable" until each endpoint's secret is rotated.
 */
export interface SecretBox {
  seal(endpoint_id: string, secret: string): Promise<string>;
  open(endpoint_id: string, sealed: string): Promise<string>;
}

const FORMAT_VERSION = "v1";
const IV_BYTES = 12;
const TAG_BYTES = 16;
const KEY_INFO = "tally webhook secrets v1";

export function createSecretBox(signing_key: () => Promise<Buffer>): SecretBox {
  let derived: Promise<Buffer> | undefined;
  const key = (): Promise<Buffer> => {
    derived ??= signing_key()
      .then((base) => Buffer.from(hkdfSync("sha256", base, Buffer.alloc(0), KEY_INFO, 32)))
      .catch((error: unknown) => {
        derived = undefined; // a database that was down is asked again next time
        throw error;
      });
    return derived;
  };
  return {
    async seal(endpoint_id, secret) {
      const iv = randomBytes(IV_BYTES);
      const cipher = createCipheriv("aes-256-gcm", await key(), iv);
      cipher.setAAD(Buffer.from(endpoint_id, "utf8"));
      const encrypted = Buffer.concat([cipher.update(secret, "utf8"), cipher.final()]);
      return `${FORMAT_VERSION}.${Buffer.concat([iv, cipher.getAuthTag(), encrypted]).toString("base64url")}`;
    },
    async open(endpoint_id, sealed) {
      const [version, body] = sealed.split(".");
      if (version !== FORMAT_VERSION || body === undefined) throw new Error("unknown sealed secret format");
      const bytes = Buffer.from(body, "base64url");
      const decipher = createDecipheriv("aes-256-gcm", await key(), bytes.subarray(0, IV_BYTES));
      decipher.setAAD(Buffer.from(endpoint_id, "utf8"));
      decipher.setAuthTag(bytes.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
      return Buffer.concat([decipher.update(bytes.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]).toString("utf8");
    },
  };
}

/** The box a process uses: keyed by the configured signing key or the one kept in the database. */
export function databaseSecretBox(database: Queryable, configured_signing_key?: string): SecretBox {
  return createSecretBox(() => loadSigningKey(database, configured_signing_key));
}

/** A new signing secret in the Standard Webhooks form: `whsec_` and 32 random bytes in base64. */
export function generateWebhookSecret(): string {
  return `whsec_${randomBytes(32).toString("base64")}`;
}
