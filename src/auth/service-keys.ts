import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { and, eq, isNull } from "drizzle-orm";
import type { Database, Orm } from "../db/port.js";
import { apiKeys } from "../db/schema.js";
import type { Scope } from "./scopes.js";

/**
 * Service keys look like `tk_<16 hex id><64 hex secret>`. Only the SHA-256 of the secret is stored: the secret
 * has 256 random bits, so a slow password hash would add cost without adding safety. The id finds the row; the
 * hashes are compared in constant time.
 */
const KEY_PATTERN = /^tk_([0-9a-f]{16})([0-9a-f]{64})$/;

/** How long a looked-up key is trusted before it is read again; a revocation takes effect within this time. */
export const KEY_CACHE_TTL_MS = 5_000;
const KEY_CACHE_ENTRIES_MAX = 10_000;

function sha256(text: string): Buffer {
  return createHash("sha256").update(text).digest();
}

export function generateServiceKey(): { id: string; key: string; secret_hash: string } {
  const id = randomBytes(8).toString("hex");
  const secret = randomBytes(32).toString("hex");
  return { id, key: `tk_${id}${secret}`, secret_hash: sha256(secret).toString("hex") };
}

export function looksLikeServiceKey(token: string): boolean {
  return token.startsWith("tk_");
}

interface CachedKey {
  secret_hash: Buffer | undefined; // undefined: no such active key
  scopes: ReadonlySet<Scope>;
  expires_at_ms: number | undefined;
  fetched_at_ms: number;
}

/**
 * The set of active key ids is read again at most this often. A token whose id is not in the set costs no
 * per-key query: however many random `tk_…` tokens arrive, they cost at most one small query per interval.
 */
export const KEY_IDS_REFRESH_MIN_MS = 100;

/** What a verification found; `needs_refresh` only when the caller asked not to read the id set again. */
export type KeyVerification = { key_id: string; scopes: ReadonlySet<Scope> } | undefined | "needs_refresh";

/** Reads keys through the pooled query path when given the Database (bounded like every other query). */
type KeySource = Orm | Pick<Database, "query" | "kind">;

export class ServiceKeyVerifier {
  private readonly cache = new Map<string, CachedKey>();
  private activeIds: { ids: ReadonlySet<string>; read_started_ms: number } | undefined;
  private idsReading: Promise<void> | undefined;
  private lastIdsReadAt = Number.NEGATIVE_INFINITY;
  /** Key-table reads made, for tests and metrics. */
  lookups_total = 0;

  constructor(
    private readonly source: KeySource,
    private readonly now_ms: () => number = Date.now,
  ) {}

  /** The key's id and scopes, or undefined when the key is malformed, unknown, revoked or wrong. */
  async verify(token: string): Promise<{ key_id: string; scopes: ReadonlySet<Scope> } | undefined> {
    const result = await this.check(token, true);
    return result === "needs_refresh" ? undefined : result;
  }

  /**
   * As verify, but answers `needs_refresh` instead of reading the set of key ids again: for callers that have
   * failed too often, a token this process knows nothing about costs nothing.
   */
  async verifyKnown(token: string): Promise<KeyVerification> {
    return this.check(token, false);
  }

  private async check(token: string, may_refresh: boolean): Promise<KeyVerification> {
    const match = KEY_PATTERN.exec(token);
    if (!match) return undefined;
    const [, id, secret] = match as unknown as [string, string, string];
    const arrived_ms = this.now_ms();
    let stored = this.freshCached(id);
    if (!stored) {
      if (!this.activeIds?.ids.has(id)) {
        if (!may_refresh) return "needs_refresh";
        // Not in the set read so far: the key may be newer than that read, so read the set again (a read that
        // starts after this request arrived), shared by every request that waits for it.
        if (!(await this.idsReadSince(arrived_ms)).has(id)) return undefined;
      }
      stored = await this.lookup(id);
    }
    if (!stored.secret_hash) return undefined;
    if (stored.expires_at_ms !== undefined && this.now_ms() >= stored.expires_at_ms) return undefined;
    if (!timingSafeEqual(stored.secret_hash, sha256(secret))) return undefined;
    return { key_id: id, scopes: stored.scopes };
  }

  /**
   * The key's id and scopes from its id and the SHA-256 of its secret, as a console session keeps them (never the
   * secret itself); undefined when the key is unknown, revoked or the hash differs. Same cache, so a revocation
   * ends a console session within KEY_CACHE_TTL_MS too.
   */
  async verifyHash(id: string, secret_hash_hex: string): Promise<{ key_id: string; scopes: ReadonlySet<Scope> } | undefined> {
    if (!/^[0-9a-f]{16}$/.test(id) || !/^[0-9a-f]{64}$/.test(secret_hash_hex)) return undefined;
    const stored = this.freshCached(id) ?? (await this.lookup(id));
    if (!stored.secret_hash) return undefined;
    if (!timingSafeEqual(stored.secret_hash, Buffer.from(secret_hash_hex, "hex"))) return undefined;
    return { key_id: id, scopes: stored.scopes };
  }

  private freshCached(id: string): CachedKey | undefined {
    const cached = this.cache.get(id);
    return cached && this.now_ms() - cached.fetched_at_ms < KEY_CACHE_TTL_MS ? cached : undefined;
  }

  private async idsReadSince(since_ms: number): Promise<ReadonlySet<string>> {
    for (;;) {
      if (this.activeIds && this.activeIds.read_started_ms >= since_ms) return this.activeIds.ids;
      this.idsReading ??= this.readIds().finally(() => {
        this.idsReading = undefined;
      });
      await this.idsReading;
    }
  }

  private async readIds(): Promise<void> {
    const wait_ms = this.lastIdsReadAt + KEY_IDS_REFRESH_MIN_MS - this.now_ms();
    if (wait_ms > 0) await new Promise((resolve) => setTimeout(resolve, wait_ms));
    const started = this.now_ms();
    this.lastIdsReadAt = started;
    this.lookups_total++;
    const rows = await this.select<{ id: string }>("SELECT id FROM api_keys WHERE revoked_at IS NULL", []);
    this.activeIds = { ids: new Set(rows.map((row) => row.id)), read_started_ms: started };
  }

  private async lookup(id: string): Promise<CachedKey> {
    this.lookups_total++;
    const [row] = await this.select<{ secret_hash: string; scopes: string[]; expires_at: Date | string | null }>(
      "SELECT secret_hash, scopes, expires_at FROM api_keys WHERE id = $1 AND revoked_at IS NULL",
      [id],
    );
    const entry: CachedKey = {
      secret_hash: row ? Buffer.from(row.secret_hash, "hex") : undefined,
      scopes: new Set((row?.scopes ?? []) as Scope[]),
      expires_at_ms: row?.expires_at ? new Date(row.expires_at).getTime() : undefined,
      fetched_at_ms: this.now_ms(),
    };
    this.cache.delete(id);
    this.cache.set(id, entry);
    if (this.cache.size > KEY_CACHE_ENTRIES_MAX) {
      const oldest = this.cache.keys().next().value;
      if (oldest !== undefined) this.cache.delete(oldest);
    }
    return entry;
  }

  private async select<Row extends object>(text: string, parameters: unknown[]): Promise<Row[]> {
    if ("kind" in this.source && "query" in this.source) return this.source.query<Row>(text, parameters);
    const orm = this.source as Orm;
    if (parameters.length === 0) return (await orm.select({ id: apiKeys.id }).from(apiKeys).where(isNull(apiKeys.revokedAt))) as unknown as Row[];
    return (await orm
      .select({ secret_hash: apiKeys.secretHash, scopes: apiKeys.scopes, expires_at: apiKeys.expiresAt })
      .from(apiKeys)
      .where(and(eq(apiKeys.id, parameters[0] as string), isNull(apiKeys.revokedAt)))) as unknown as Row[];
  }
}

/** A service key's id and the SHA-256 of its secret (what is stored), or undefined when it is not shaped like one. */
export function serviceKeyReference(token: string): { id: string; secret_hash: string } | undefined {
  const match = KEY_PATTERN.exec(token);
  if (!match) return undefined;
  return { id: match[1]!, secret_hash: sha256(match[2]!).toString("hex") };
}

/** The SHA-256 of a token in hex: what a console session keeps to recognise the admin key without holding it. */
export function tokenHash(token: string): string {
  return sha256(token).toString("hex");
}

/** The admin key's hash and shape, kept so that a request hashes at most what it presents (the hot path). */
let adminKeyFacts: { key: string; hash: Buffer; shaped_like_service_key: boolean } | undefined;

/**
 * Compares a presented token with the bootstrap admin key in constant time (hashing first equalizes lengths). A
 * token shaped like a service key cannot be an admin key that is not, so it skips the hash: the answer depends only
 * on the token's own shape, which its sender knows, and on whether the admin key has that shape.
 */
export function matchesAdminKey(token: string, admin_key: string | undefined): boolean {
  if (admin_key === undefined) return false;
  if (adminKeyFacts?.key !== admin_key) {
    adminKeyFacts = { key: admin_key, hash: sha256(admin_key), shaped_like_service_key: looksLikeServiceKey(admin_key) };
  }
  if (!adminKeyFacts.shaped_like_service_key && looksLikeServiceKey(token)) return false;
  return timingSafeEqual(sha256(token), adminKeyFacts.hash);
}

export async function createServiceKey(
  orm: Orm,
  input: { name: string; scopes: Scope[]; expires_at?: string },
): Promise<{ id: string; key: string; created_at: string }> {
  const generated = generateServiceKey();
  const [row] = await orm
    .insert(apiKeys)
    .values({
      id: generated.id,
      name: input.name,
      secretHash: generated.secret_hash,
      scopes: input.scopes,
      expiresAt: input.expires_at ?? null,
    })
    .returning({ created_at: apiKeys.createdAt });
  return { id: generated.id, key: generated.key, created_at: row!.created_at };
}

export async function revokeServiceKey(orm: Orm, id: string): Promise<boolean> {
  const rows = await orm
    .update(apiKeys)
    .set({ revokedAt: new Date().toISOString() })
    .where(and(eq(apiKeys.id, id), isNull(apiKeys.revokedAt)))
    .returning({ id: apiKeys.id });
  return rows.length > 0;
}

/** Keys are made by hand, a few per integration; a listing stops here rather than grow without bound. */
export const SERVICE_KEYS_LISTED_MAX = 1000;

export async function listServiceKeys(orm: Orm) {
  return orm
    .select({
      id: apiKeys.id,
      name: apiKeys.name,
      scopes: apiKeys.scopes,
      created_at: apiKeys.createdAt,
      revoked_at: apiKeys.revokedAt,
      expires_at: apiKeys.expiresAt,
    })
    .from(apiKeys)
    .orderBy(apiKeys.createdAt)
    .limit(SERVICE_KEYS_LISTED_MAX);
}
