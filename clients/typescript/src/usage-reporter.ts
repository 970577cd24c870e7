import { randomUUID } from "node:crypto";
import { TallyApiError, type TallyClient } from "./client.js";
import type { components } from "./schema.js";

/**
 * Batches usage rows for an LLM proxy. `report(row)` returns at once; rows are sent through POST /v1/usage/batch
 * every `flush_interval_ms` or as soon as `flush_rows` are waiting, one batch at a time.
 *
 * - **Exactly once.** Every row has an idempotency key (yours, or a UUID given at report time), and a batch that
 *   failed or timed out is retried as the same rows with the same keys, so a retry can never charge twice: tally
 *   answers rows it already has as replays.
 * - **Retries** with exponential backoff (from `retry_initial_ms` up to `retry_max_ms`) on network errors,
 *   timeouts, 408, 429 and 5xx, for as long as it takes; after `failures_before_error` failures in a row `on_error`
 *   is called (and again every time that many more fail), so a tally that stays down is noticed.
 * - **Refused rows** (400 with the row's index, 404 for an unknown account, 409 for a reused key) are taken out of
 *   the batch and handed to `on_error`; the rest of the batch is sent again. Any other refusal drops the batch and
 *   hands all of its rows to `on_error`.
 * - **Bounded memory.** At most `buffer_rows_max` rows wait. Overflow policy: a row reported while the buffer is
 *   full is **not** buffered; `report` returns false and `on_error` receives a UsageBufferFullError with the row.
 *   Rows already buffered are never dropped to make room (they may already be in flight). Size the buffer for the
 *   outage you want to ride out: rows/s × seconds.
 * - **Shutdown.** `flush()` sends everything reported so far and resolves when it is in the ledger; `close()`
 *   stops the timer, then flushes. Call `close()` on SIGTERM before exiting.
 */

export type UsageRow = Omit<components["schemas"]["UsageRequest"], "idempotency_key"> & { idempotency_key?: string };
type KeyedRow = components["schemas"]["UsageRequest"];

export class UsageBufferFullError extends Error {
  constructor(readonly buffer_rows_max: number) {
    super(`the usage buffer holds ${buffer_rows_max} rows already; the row was not buffered`);
    this.name = "UsageBufferFullError";
  }
}

export class UsageFlushError extends Error {
  constructor(
    message: string,
    override readonly cause: unknown,
    readonly consecutive_failures: number,
  ) {
    super(message);
    this.name = "UsageFlushError";
  }
}

export interface UsageReporterOptions {
  client: TallyClient;
  /** Send at least this often while rows wait. Default 1000. */
  flush_interval_ms?: number;
  /** Send as soon as this many rows wait; also the largest batch. 1–10,000, default 1000. */
  flush_rows?: number;
  /** Most rows waiting (including the batch in flight). Default 100,000. */
  buffer_rows_max?: number;
  retry_initial_ms?: number;
  retry_max_ms?: number;
  failures_before_error?: number;
  /** Rows refused for good, the buffer overflowing, a flush that keeps failing. Never throws into the reporter. */
  on_error?: (error: Error, rows: readonly KeyedRow[]) => void;
  /** Injectable for tests. */
  sleep?: (ms: number) => Promise<void>;
}

const BATCH_ROWS_MAX = 10_000;

export class UsageReporter {
  private readonly buffer: KeyedRow[] = [];
  private readonly options: Required<Omit<UsageReporterOptions, "client" | "on_error">> & Pick<UsageReporterOptions, "on_error">;
  private timer: NodeJS.Timeout | undefined;
  private draining: Promise<void> | undefined;
  private closed = false;
  private consecutive_failures = 0;

  constructor(private readonly client: TallyClient, options: Omit<UsageReporterOptions, "client"> = {}) {
    this.options = {
      flush_interval_ms: options.flush_interval_ms ?? 1000,
      flush_rows: Math.min(Math.max(1, options.flush_rows ?? 1000), BATCH_ROWS_MAX),
      buffer_rows_max: options.buffer_rows_max ?? 100_000,
      retry_initial_ms: options.retry_initial_ms ?? 100,
      retry_max_ms: options.retry_max_ms ?? 10_000,
      failures_before_error: options.failures_before_error ?? 5,
      sleep: options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms))),
      on_error: options.on_error,
    };
    this.timer = setInterval(() => void this.drain(), this.options.flush_interval_ms);
    this.timer.unref();
  }

  /** Rows waiting to be sent, including the batch in flight. */
  get pending_rows(): number {
    return this.buffer.length;
  }

  /** Buffers the row and returns at once: true if it was buffered, false if the buffer was full (see on_error). */
  report(row: UsageRow): boolean {
    if (this.closed) throw new Error("the usage reporter is closed");
    const keyed = { ...row, idempotency_key: row.idempotency_key ?? randomUUID() } as KeyedRow;
    if (this.buffer.length >= this.options.buffer_rows_max) {
      this.notify(new UsageBufferFullError(this.options.buffer_rows_max), [keyed]);
      return false;
    }
    this.buffer.push(keyed);
    if (this.buffer.length >= this.options.flush_rows) void this.drain();
    return true;
  }

  /** Resolves once every row reported before the call is in the ledger (or handed to on_error as refused). */
  async flush(): Promise<void> {
    while (this.buffer.length > 0) await this.drain();
  }

  /** Stops the timer and flushes. Reporting after close throws. */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    await this.flush();
  }

  /** One drain at a time: it sends batches until the buffer is empty, each retried until it is settled. */
  private drain(): Promise<void> {
    this.draining ??= this.sendAll().finally(() => {
      this.draining = undefined;
    });
    return this.draining;
  }

  private async sendAll(): Promise<void> {
    while (this.buffer.length > 0) {
      const size = Math.min(this.buffer.length, this.options.flush_rows);
      // The batch stays at the head of the buffer until it is settled, so a retry sends exactly these rows.
      let batch = this.buffer.slice(0, size);
      let delay_ms = this.options.retry_initial_ms;
      for (;;) {
        try {
          await this.client.POST("/v1/usage/batch", { body: { entries: batch } });
          this.consecutive_failures = 0;
          break;
        } catch (error) {
          const refused = this.refusedRows(error, batch);
          if (refused) {
            this.notify(error as Error, refused);
            batch = batch.filter((row) => !refused.includes(row));
            this.removeFromBuffer(refused);
            if (batch.length === 0) break;
            continue;
          }
          this.consecutive_failures++;
          if (this.consecutive_failures % this.options.failures_before_error === 0) {
            this.notify(new UsageFlushError(`usage flush failed ${this.consecutive_failures} times in a row; retrying`, error, this.consecutive_failures), batch);
          }
          await this.options.sleep(delay_ms);
          delay_ms = Math.min(delay_ms * 2, this.options.retry_max_ms);
        }
      }
      this.removeFromBuffer(batch);
    }
  }

  /** The rows a refusal names (undefined: retry the whole batch); all of them when the refusal names none. */
  private refusedRows(error: unknown, batch: KeyedRow[]): KeyedRow[] | undefined {
    if (!(error instanceof TallyApiError) || error.retryable) return undefined;
    const problem = error.problem as TallyApiError["problem"] & { index?: number; account_ids?: string[] };
    if (problem.code === "idempotency_key_reused" && typeof problem.index === "number" && batch[problem.index]) return [batch[problem.index]!];
    if (problem.code === "account_not_found" && Array.isArray(problem.account_ids)) {
      const missing = new Set(problem.account_ids);
      const rows = batch.filter((row) => missing.has(row.account_id));
      if (rows.length > 0) return rows;
    }
    if (problem.code === "validation_failed" && problem.errors) {
      const indexes = new Set(problem.errors.map((entry) => /^entries\[(\d+)\]/.exec(entry.field)?.[1]).filter((index) => index !== undefined).map(Number));
      const rows = batch.filter((_, index) => indexes.has(index));
      if (rows.length > 0) return rows;
    }
    return batch;
  }

  private removeFromBuffer(rows: readonly KeyedRow[]): void {
    const settled = new Set(rows);
    let kept = 0;
    for (const row of this.buffer) if (!settled.has(row)) this.buffer[kept++] = row;
    this.buffer.length = kept;
  }

  private notify(error: Error, rows: readonly KeyedRow[]): void {
    try {
      this.options.on_error?.(error, rows);
    } catch {
      // A throwing callback must not stop the reporter.
    }
  }
}
