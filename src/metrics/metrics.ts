import type { MiddlewareHandler } from "hono";
import { routePath } from "hono/route";
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { Database } from "../db/port.js";
import type { AppEnv } from "../http/env.js";
import type { LedgerContext } from "../ledger/core/context.js";
import { ledgerRegistry } from "./ledger-counters.js";
import { poolUsage } from "./pool.js";

/**
 * The metrics /metrics serves (Prometheus text format): requests by route template and status, the database pool,
 * the oldest transaction holding back the xid horizon, event-stream subscribers, and the ledger counters
 * (ledger-counters.ts). Every label comes from a small fixed set: a route template, never a path with an id in it.
 */
export interface Metrics {
  registry: Registry;
  /** Times every request; cheap: one clock read, one counter and one histogram update. */
  middleware: MiddlewareHandler<AppEnv>;
  /** The exposition text, with the database gauges read at scrape time. */
  render(): Promise<string>;
  contentType: string;
}

const KNOWN_METHODS = new Set(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]);

/** Seconds; from 1 ms (a cached balance read) to 10 s (a 10,000-row batch under load). */
const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/**
 * The oldest transaction that holds a snapshot or an xid, which keeps VACUUM from removing dead rows and every
 * checkpoint fold (`xid < pg_snapshot_xmin`) from moving past it: balance reads then sum an ever longer delta.
 * tally's own scrape is excluded. Cluster-wide, because shared catalogs and other databases' sessions count too.
 */
const HORIZON_SQL = `
SELECT coalesce(extract(epoch FROM now() - min(xact_start)), 0)::float8 AS age_seconds,
       coalesce(max(greatest(age(backend_xmin), age(backend_xid))), 0)::int8::text AS age_xids
FROM pg_stat_activity
WHERE pid <> pg_backend_pid() AND (backend_xmin IS NOT NULL OR backend_xid IS NOT NULL)`;

export function createMetrics(deps: { database: Database; ledger: LedgerContext; horizon_timeout_ms?: number }): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: "tally_process_" });

  const requests = new Counter({
    name: "tally_http_requests_total",
    help: "HTTP requests, by method, route template and status",
    labelNames: ["method", "route", "status"] as const,
    registers: [registry],
  });
  const durations = new Histogram({
    name: "tally_http_request_duration_seconds",
    help: "Time to the response (for a stream: to its headers), by method, route template and status",
    labelNames: ["method", "route", "status"] as const,
    buckets: DURATION_BUCKETS,
    registers: [registry],
  });

  const usage = poolUsage(deps.database);
  if (usage) {
    new Gauge({
      name: "tally_db_pool_connections",
      help: "Database operations holding a connection (in_use) and waiting for one (waiting); max is the pool size",
      labelNames: ["state"] as const,
      registers: [registry],
      collect() {
        this.set({ state: "in_use" }, Math.min(usage.in_flight, usage.pool_max));
        this.set({ state: "waiting" }, Math.max(0, usage.in_flight - usage.pool_max));
        this.set({ state: "max" }, usage.pool_max);
      },
    });
  }
  new Gauge({
    name: "tally_event_stream_subscribers",
    help: "Open GET /v1/events streams (and other in-process listeners) on this process",
    registers: [registry],
    collect() {
      this.set(deps.ledger.events.hub.subscriber_count);
    },
  });
  const horizonSeconds = new Gauge({
    name: "tally_db_oldest_transaction_age_seconds",
    help: "Age of the oldest transaction holding back the xid horizon (cluster-wide); alert when it stays above 300",
    registers: [registry],
  });
  const horizonXids = new Gauge({
    name: "tally_db_oldest_transaction_age_xids",
    help: "Transaction ids issued since the oldest snapshot or xid still held (cluster-wide)",
    registers: [registry],
  });
  const scrapeErrors = new Counter({
    name: "tally_metrics_database_read_failures_total",
    help: "Scrapes whose database gauges could not be read (the gauges then keep their previous values)",
    registers: [registry],
  });

  async function readHorizon(): Promise<void> {
    // The embedded store runs on one connection inside this process: nothing else can hold the horizon back.
    if (deps.database.kind === "embedded") return;
    const timeout_ms = deps.horizon_timeout_ms ?? 2_000;
    let timer: NodeJS.Timeout | undefined;
    try {
      const [row] = await Promise.race([
        deps.database.query<{ age_seconds: number; age_xids: string }>(HORIZON_SQL),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error("horizon query timed out")), timeout_ms);
        }),
      ]);
      horizonSeconds.set(Number(row?.age_seconds ?? 0));
      horizonXids.set(Number(row?.age_xids ?? 0));
    } catch {
      scrapeErrors.inc();
    } finally {
      clearTimeout(timer);
    }
  }

  const middleware: MiddlewareHandler<AppEnv> = async (c, next) => {
    const started = performance.now();
    try {
      await next();
    } finally {
      const status = c.res.status;
      // The matched route's template (`/v1/accounts/:id`), or `unmatched` for a 404 no route claimed, so a
      // scanner probing random paths cannot create new series.
      const route = routePath(c, -1);
      const method = KNOWN_METHODS.has(c.req.method) ? c.req.method : "other";
      const labels = { method, route: route.endsWith("*") ? "unmatched" : route, status: String(status) };
      requests.inc(labels);
      durations.observe(labels, (performance.now() - started) / 1000);
    }
  };

  const merged = Registry.merge([registry, ledgerRegistry]);
  return {
    registry: merged,
    middleware,
    contentType: merged.contentType,
    async render() {
      await readHorizon();
      return merged.metrics();
    },
  };
}
