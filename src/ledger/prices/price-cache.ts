import type { LedgerContext } from "../core/context.js";
import { PRICE_LIMITS } from "./price-rules.js";
import { pricesInForceAndScheduled, toPriceVersion } from "./price-table.js";
import type { PriceVersion } from "./pricing.js";

/**
 * The in-process price cache, so that pricing a usage row costs no database round trip.
 *
 * It holds, per meter, the version in force when it was loaded and every version scheduled after it; which of
 * them applies is decided per request by the ledger clock (pricing.ts), so a scheduled version takes effect on time
 * without a reload.
 *
 * Freshness across processes is a version check, not LISTEN/NOTIFY: a request uses the cache only if the last check
 * *started* less than `revalidate_ms` (500 ms) ago; otherwise it awaits one check, `SELECT count(*) FROM prices`,
 * shared by every request that arrives meanwhile, and a reload if the count moved. The table is append-only, so the
 * count moves with every committed PUT, whatever the commit order. A PUT committed at time c is therefore used by
 * every request that starts after c + 500 ms, in any process: within the 1 s the design promises, with no listener
 * connection to keep alive or re-establish and on the embedded store alike. Under load that is one small query per
 * process per half second; an idle process pays it on its first priced request. The process that made the PUT
 * invalidates its own cache at once.
 */

export const PRICE_CACHE_REVALIDATE_MS = 500;

const COUNT_SQL = "SELECT COUNT(*)::int AS versions FROM prices";

export class PriceCache {
  private by_meter = new Map<string, PriceVersion[]>();
  private versions = -1;
  /** When (performance.now()) the last completed check started; a check older than revalidate_ms is stale. */
  private checked_at = Number.NEGATIVE_INFINITY;
  private pending: { started_at: number; done: Promise<void> } | undefined;
  /** When the snapshot now held was loaded, so an older load finishing late cannot replace a newer one. */
  private loaded_at = Number.NEGATIVE_INFINITY;
  /** Bumped by invalidate(): a check begun before it may have read the table before this process's PUT. */
  private generation = 0;
  readonly stats = { checks: 0, loads: 0 };

  constructor(
    private readonly context: LedgerContext,
    readonly revalidate_ms: number = PRICE_CACHE_REVALIDATE_MS,
    private readonly monotonic_now: () => number = () => performance.now(),
  ) {}

  /** The versions of `meter` that can apply from now on, as of the last check; call after `fresh()`. */
  versionsOf(meter: string): readonly PriceVersion[] {
    return this.by_meter.get(meter) ?? [];
  }

  /** Resolves at once when the cache is warm; otherwise after one (shared) check. */
  fresh(): Promise<void> | void {
    const now = this.monotonic_now();
    if (now - this.checked_at < this.revalidate_ms) return;
    if (this.pending && now - this.pending.started_at < this.revalidate_ms) return this.pending.done;
    const pending = { started_at: now, done: this.check(now) };
    this.pending = pending;
    return pending.done.finally(() => {
      if (this.pending === pending) this.pending = undefined;
    });
  }

  /** Forgets everything: the next request checks and reloads. */
  invalidate(): void {
    this.checked_at = Number.NEGATIVE_INFINITY;
    this.versions = -1;
    this.pending = undefined;
    this.generation++;
  }

  private async check(started_at: number): Promise<void> {
    this.stats.checks++;
    const generation = this.generation;
    const [row] = await this.context.database.query<{ versions: number }>(COUNT_SQL);
    const versions = Number(row!.versions);
    if (versions !== this.versions) await this.load(started_at, versions, generation);
    if (generation === this.generation) this.checked_at = Math.max(this.checked_at, started_at);
  }

  private async load(started_at: number, versions: number, generation: number): Promise<void> {
    this.stats.loads++;
    const rows = await pricesInForceAndScheduled(this.context.database, this.context.now(), {
      after_meter: undefined,
      meters: PRICE_LIMITS.meters_max,
    });
    if (started_at < this.loaded_at || generation !== this.generation) return;
    const by_meter = new Map<string, PriceVersion[]>();
    for (const row of rows) {
      const list = by_meter.get(row.meter) ?? [];
      list.push(toPriceVersion(row));
      by_meter.set(row.meter, list);
    }
    this.by_meter = by_meter;
    this.versions = versions;
    this.loaded_at = started_at;
  }
}

const caches = new WeakMap<LedgerContext, PriceCache>();

/** The price cache of a ledger context (one per process, as the context is), created on first use. */
export function priceCacheOf(context: LedgerContext): PriceCache {
  let cache = caches.get(context);
  if (!cache) {
    cache = new PriceCache(context);
    caches.set(context, cache);
  }
  return cache;
}

/** Replaces a context's cache, e.g. with a test's revalidation interval. */
export function configurePriceCache(context: LedgerContext, revalidate_ms: number): PriceCache {
  const cache = new PriceCache(context, revalidate_ms);
  caches.set(context, cache);
  return cache;
}
