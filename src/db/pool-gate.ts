import { AsyncLocalStorage } from "node:async_hooks";
import { TallyError } from "../errors.js";
import { databaseErrorCode } from "./port.js";

/**
 * The cancellation signal of the request being served, if any. The HTTP layer sets it (see src/http/deadline.ts);
 * work that has not started yet when it fires (a wait for a connection) is abandoned.
 */
const requestScope = new AsyncLocalStorage<RequestScope>();

interface RequestScope {
  signal: AbortSignal;
  /** Time this request has already spent waiting for connections: the acquire bound is per request, not per query. */
  waited_ms: number;
}

export function runCancellable<T>(signal: AbortSignal, work: () => Promise<T>): Promise<T> {
  return requestScope.run({ signal, waited_ms: 0 }, work);
}

/**
 * Runs shared work (a group-commit flush serves many requests) outside the request that happened to start it: it
 * must not be cancelled by that request's deadline, nor spend that request's connection-wait budget. Each acquire
 * it makes is bounded by the gate's own limit instead.
 */
export function outsideRequestScope<T>(work: () => T): T {
  return requestScope.exit(work);
}

/** Driver and server errors that mean the database cannot be reached (or is going away), not that SQL failed. */
const UNREACHABLE_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EPIPE",
  "CONNECT_TIMEOUT",
  "CONNECTION_CLOSED",
  "CONNECTION_ENDED",
  "CONNECTION_DESTROYED",
  "57P01", // admin_shutdown: the server is stopping and terminated the session
  "57P02", // crash_shutdown
  "57P03", // cannot_connect_now: starting up or shutting down
  "53300", // too_many_connections
]);

export function isDatabaseUnreachable(error: unknown): boolean {
  const code = databaseErrorCode(error) ?? "";
  // Class 08: connection exceptions.
  return UNREACHABLE_CODES.has(code) || code.startsWith("08");
}

/**
 * Errors that say for certain the database is down: the server refused or closed the connection, or said it is
 * stopping. One of these makes the gate answer at once until a probe succeeds. That includes a closed session:
 * postgres.js reports sessions the server terminates while stopping as CONNECTION_CLOSED (it drops the FATAL
 * 57P01), and waiting for each of them to fail separately is what held requests for seconds. A session ended for
 * idling in a transaction (25P03, reported the same way) therefore also costs up to one probe interval of 503s.
 */
function meansDatabaseDown(error: unknown): boolean {
  return isDatabaseUnreachable(error) && !isSlowConnect(error);
}

/**
 * A connect that timed out may mean an unreachable server, or only a busy machine: on two cores under load a new
 * backend can take longer than the connect timeout to start, while every open connection keeps serving. A server
 * that refuses a new session for want of slots (53300, too_many_connections) is up and full, not down. Taking one
 * such timeout for an outage refused every request for a probe interval (the bench saw a burst of 503s when the
 * load generator opened its pool). So slow connects open the gate only when SLOW_CONNECTS_FOR_OUTAGE of them come in
 * a row with no successful work between them; the request that hit one still gets its 503.
 */
function isSlowConnect(error: unknown): boolean {
  const code = databaseErrorCode(error);
  return code === "CONNECT_TIMEOUT" || code === "ETIMEDOUT" || code === "53300";
}

export const SLOW_CONNECTS_FOR_OUTAGE = 3;

export interface PoolGateOptions {
  /** Work items running at once: the pool size, so that nothing queues inside the driver, where it cannot be bounded. */
  slots: number;
  /** Work items waiting for a slot; one more is refused at once with 503. */
  queue_max: number;
  /** How long a work item waits for a slot before it is refused with 503. */
  acquire_timeout_ms: number;
  /**
   * After the database was found unreachable, requests are refused at once with 503 except for one probe per this
   * interval, whose success reopens the gate: an outage costs the caller nothing but a fast 503, and recovery takes
   * at most this long after the database answers again.
   */
  probe_interval_ms: number;
  now_ms?: () => number;
}

/** How long a probe may take before it counts as failed (the connect timeout's default). */
const PROBE_TIMEOUT_MS = 1_000;

interface Waiter {
  admit(): void;
  refuse(error: Error): void;
}

/**
 * A bounded front for the connection pool. postgres.js queues without limit when its connections are busy or
 * cannot be made, which under an outage held requests for tens of seconds; here the wait is bounded in length
 * and in time, and a known outage is answered at once.
 */
export class PoolGate {
  private running = 0;
  private readonly waiting: Waiter[] = [];
  private unreachableSince: number | undefined;
  private nextProbeAt = 0;
  private probing = false;
  /** Slow connects since the last piece of work that succeeded (see isSlowConnect). */
  private slowConnectsInRow = 0;
  private readonly running_work = new Set<(error: Error) => void>();
  private readonly now_ms: () => number;

  constructor(private readonly options: PoolGateOptions) {
    this.now_ms = options.now_ms ?? Date.now;
  }

  get queued(): number {
    return this.waiting.length;
  }

  get unreachable(): boolean {
    return this.unreachableSince !== undefined;
  }

  async run<T>(work: () => Promise<T>): Promise<T> {
    const scope = requestScope.getStore();
    if (scope?.signal.aborted) throw cancelled();
    let probe = false;
    if (this.unreachableSince !== undefined) {
      if (this.probing || this.now_ms() < this.nextProbeAt) throw unreachable();
      probe = true;
      this.probing = true;
      this.nextProbeAt = this.now_ms() + this.options.probe_interval_ms;
    }
    const waitStarted = this.now_ms();
    try {
      await this.acquire(scope);
    } catch (error) {
      if (probe) this.probing = false;
      throw error;
    } finally {
      if (scope) scope.waited_ms += this.now_ms() - waitStarted;
    }
    // When the database is found down, work still running is answered at once as well: postgres.js retries a
    // connection that the server closes without an error, so a query caught in a shutdown could wait seconds. Its
    // slot stays taken until the work settles, so the pool is never oversubscribed. A write answered 503 here may
    // still commit; like any 503, the client retries it with the same idempotency key.
    let abandon!: (error: Error) => void;
    const abandoned = new Promise<never>((_, reject) => (abandon = reject));
    abandoned.catch(() => {});
    this.running_work.add(abandon);
    // A probe answers within the bound too: past it, it counts as failed and the next probe may go.
    const probeTimer = probe
      ? setTimeout(() => {
          this.probing = false;
          abandon(unreachable());
        }, PROBE_TIMEOUT_MS)
      : undefined;
    const outcome = (async () => work())();
    const settled = outcome.then(
      () => {
        this.slowConnectsInRow = 0;
        if (probe || this.unreachableSince !== undefined) this.unreachableSince = undefined;
      },
      (error: unknown) => {
        if (meansDatabaseDown(error)) this.markUnreachable();
        else if (isSlowConnect(error) && ++this.slowConnectsInRow >= SLOW_CONNECTS_FOR_OUTAGE) this.markUnreachable();
      },
    );
    void settled.finally(() => {
      clearTimeout(probeTimer);
      this.running_work.delete(abandon);
      if (probe) this.probing = false;
      this.release();
    });
    try {
      return await Promise.race([outcome, abandoned]);
    } finally {
      this.running_work.delete(abandon);
    }
  }

  private acquire(scope: RequestScope | undefined): Promise<void> {
    if (this.running < this.options.slots) {
      this.running++;
      return Promise.resolve();
    }
    const signal = scope?.signal;
    const wait_ms = this.options.acquire_timeout_ms - (scope?.waited_ms ?? 0);
    if (this.waiting.length >= this.options.queue_max || wait_ms <= 0) {
      return Promise.reject(
        new TallyError("service_unavailable", `${this.options.queue_max} requests already wait for a database connection; retry later`),
      );
    }
    return new Promise<void>((resolve, reject) => {
      const settle = () => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        const index = this.waiting.indexOf(waiter);
        if (index >= 0) this.waiting.splice(index, 1);
      };
      const waiter: Waiter = {
        admit: () => {
          settle();
          resolve();
        },
        refuse: (error) => {
          settle();
          reject(error);
        },
      };
      const timer = setTimeout(() => waiter.refuse(busy(this.options.acquire_timeout_ms)), wait_ms);
      const onAbort = () => waiter.refuse(cancelled());
      signal?.addEventListener("abort", onAbort, { once: true });
      this.waiting.push(waiter);
    });
  }

  private release(): void {
    const next = this.waiting.shift();
    if (next) next.admit();
    else this.running--;
  }

  private markUnreachable(): void {
    if (this.unreachableSince === undefined) {
      this.unreachableSince = this.now_ms();
      this.nextProbeAt = this.now_ms() + this.options.probe_interval_ms;
    }
    // Everyone waiting would only try a connection that cannot be made: answer them now, and the running too.
    for (const waiter of [...this.waiting]) waiter.refuse(unreachable());
    for (const abandon of [...this.running_work]) abandon(unreachable());
    this.running_work.clear();
  }
}

function unreachable(): TallyError {
  return new TallyError("service_unavailable", "the database is not reachable; retry later");
}

function cancelled(): TallyError {
  return new TallyError("request_timeout", "the request ran out of time before it reached the database");
}

function busy(acquire_timeout_ms: number): TallyError {
  return new TallyError("service_unavailable", `no database connection became free within ${acquire_timeout_ms} ms; retry later`);
}
