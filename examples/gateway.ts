/**
 * An example access gateway for tally: it keeps the set of blocked accounts (balance at or below zero) for a fixed
 * list of accounts, and learns about restorations and depletions from tally instead of polling.
 *
 *   TALLY_URL=http://localhost:8080 TALLY_KEY=tk_… ACCOUNT_IDS=org_42,org_7 npx tsx examples/gateway.ts
 *
 * Environment:
 *   TALLY_URL          tally's base URL (default http://localhost:8080)
 *   TALLY_KEY          a service key with balances:read and events:read (or the admin key)
 *   ACCOUNT_IDS        comma-separated ids of the accounts this gateway guards
 *   DATABASE_URL       optional: tally's PostgreSQL; the gateway then LISTENs for NOTIFYs instead of using SSE
 *   NOTIFY_CHANNEL     the channel tally notifies on (default tally_balance_restored); only with DATABASE_URL
 *   RESYNC_INTERVAL_S  optional: also redo the bulk load this often (see "What tally does not tell you" below)
 *
 * How it stays correct (docs/design.md, "Zero crossings", has tally's side of the argument):
 *
 * 1. Follow first, then load. In SSE mode it opens GET /v1/events without a cursor, which pins the stream at the
 *    latest event id at that moment, and only then bulk-loads every balance with POST /v1/balances/query. Every
 *    event after the pin is delivered, and everything before it is already reflected in the load. (In LISTEN mode,
 *    the LISTEN is established before the load, for the same reason.)
 * 2. Every balance read that finds an account at or below zero is an observation: tally remembers it and promises
 *    a balance_restored event after it once credits bring the account above zero. So blocking on such a read is
 *    safe: the gateway will be told.
 * 3. On balance_restored it re-reads the account instead of trusting the event's balance (the event may be old,
 *    and usage may have spent the credit since). If the re-read is still at or below zero, that read is itself a
 *    new observation, and the promise of point 2 starts again.
 * 4. On balance_depleted (some observation, by anyone, found the account at or below zero) it blocks.
 * 5. Answers can arrive out of order (a slow read started before a restoration can land after the re-read it
 *    triggered). Every read and every depletion takes a ticket when it starts; an answer older than the last one
 *    applied to its account is dropped.
 * 6. Connections drop. SSE reconnects with exponential backoff (0.5 s doubling to 30 s) and Last-Event-ID, which
 *    replays exactly what was missed. When resuming is impossible (no event id yet, or the gap is so long the
 *    events may have been pruned), it reconnects without a cursor and redoes the bulk load. NOTIFYs sent while a
 *    LISTEN connection is down are lost, so LISTEN mode redoes the bulk load every time postgres.js re-LISTENs.
 *
 * What tally does not tell you: usage never triggers an event. An account that usage drives to zero is noticed
 * when something observes it (a balance read or check, or a strict debit refused), and balance_depleted then
 * reaches every gateway following the stream. If nothing else reads balances, set RESYNC_INTERVAL_S to bound how
 * long such an account stays unblocked. In LISTEN mode depletions are not NOTIFYed at all, so only this gateway's
 * own reads (and RESYNC_INTERVAL_S) block accounts.
 *
 * Uses only Node 20's fetch and postgres.js (already a tally dependency). Logs state changes as lines on stdout.
 */
import { pathToFileURL } from "node:url";
import postgres from "postgres";

export interface GatewayOptions {
  tally_url: string;
  key: string;
  account_ids: readonly string[];
  /** With a URL, LISTEN on tally's PostgreSQL instead of following the SSE stream. */
  database_url?: string;
  notify_channel?: string;
  /** 0 (the default) turns the periodic bulk load off. */
  resync_interval_ms?: number;
  log?: (line: string) => void;
}

export interface BalanceEvent {
  id: string;
  type: "balance_restored" | "balance_depleted";
  account_id: string;
  balance: string;
  time: string;
}

/** POST /v1/balances/query takes at most this many ids. */
const BULK_QUERY_MAX = 1000;
const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 30_000;
/** tally sends a heartbeat every 15 s on an idle stream; three missed ones mean the connection is dead. */
const STREAM_IDLE_MS = 45_000;
/**
 * Resuming with Last-Event-ID is exact only while the missed events are still retained (EVENT_RETENTION_DAYS,
 * 7 by default). tally cannot say that a cursor fell behind, so after an outage this long, start over instead.
 */
const RESUME_GAP_MAX_MS = 24 * 60 * 60 * 1000;
const REQUEST_TIMEOUT_MS = 10_000;

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string | undefined,
    message: string,
  ) {
    super(message);
  }
}

/** Configuration mistakes that retrying cannot fix. */
const FATAL_STATUSES = new Set([400, 401, 403]);

/** Balances are canonical decimal strings ("0", "-2", "0.5"): positive means no sign and a non-zero digit. */
export function isPositive(balance: string): boolean {
  return !balance.startsWith("-") && /[1-9]/.test(balance);
}

export class Gateway {
  private readonly guarded: ReadonlySet<string>;
  private readonly blocked = new Set<string>();
  private synced = false;
  /** Tickets order answers per account (point 5 above). */
  private nextTicket = 1;
  private readonly appliedTicket = new Map<string, number>();
  private readonly stopping = new AbortController();
  private readonly cleanups: (() => Promise<void>)[] = [];
  private resyncing: Promise<void> | undefined;
  private resyncAgain = false;
  private readonly log: (line: string) => void;
  private markLoaded: () => void = () => {};
  private readonly loaded = new Promise<void>((resolve) => (this.markLoaded = resolve));
  private settle: { resolve: () => void; reject: (error: unknown) => void } = { resolve: () => {}, reject: () => {} };
  /** Settles when the gateway stops: resolves after stop(), rejects on an error retrying cannot fix (a bad key). */
  readonly closed = new Promise<void>((resolve, reject) => (this.settle = { resolve, reject }));

  constructor(private readonly options: GatewayOptions) {
    this.guarded = new Set(options.account_ids);
    this.log = options.log ?? ((line) => process.stdout.write(`${new Date().toISOString()} ${line}\n`));
  }

  /** Fails closed: an account is blocked until the first load has read it, and so is any account not guarded. */
  isBlocked(account_id: string): boolean {
    return !this.synced || !this.guarded.has(account_id) || this.blocked.has(account_id);
  }

  /** Starts following tally; resolves once the first bulk load has completed. */
  async start(): Promise<void> {
    const interval = this.options.resync_interval_ms ?? 0;
    if (interval > 0) {
      const timer = setInterval(() => void this.resync("periodic resync"), interval);
      this.cleanups.push(async () => clearInterval(timer));
    }
    if (this.options.database_url) {
      await this.listen(this.options.database_url).catch((error: unknown) => this.fail(error));
    } else {
      void this.followStream().catch((error: unknown) => this.fail(error));
    }
    await Promise.race([this.loaded, this.closed]);
  }

  async stop(): Promise<void> {
    if (this.stopping.signal.aborted) return;
    this.stopping.abort();
    for (const cleanup of this.cleanups.splice(0)) await cleanup().catch(() => {});
    this.settle.resolve();
  }

  private fail(error: unknown): void {
    if (this.stopping.signal.aborted) return;
    this.settle.reject(error);
    void this.stop();
  }

  // ---- State --------------------------------------------------------------------------------------------------

  /** Applies an answer (a balance, or undefined for an account that does not exist) unless a newer one was applied. */
  private apply(account_id: string, ticket: number, balance: string | undefined, source: string): void {
    if (ticket < (this.appliedTicket.get(account_id) ?? 0)) return;
    this.appliedTicket.set(account_id, ticket);
    const block = balance === undefined || !isPositive(balance);
    const shown = balance === undefined ? "account not found" : `balance ${balance}`;
    if (block && !this.blocked.has(account_id)) {
      this.blocked.add(account_id);
      this.log(`blocked   ${account_id}: ${shown} (${source})`);
    } else if (!block && this.blocked.delete(account_id)) {
      this.log(`unblocked ${account_id}: ${shown} (${source})`);
    }
  }

  private onEvent(event: BalanceEvent, via: string): void {
    if (!this.guarded.has(event.account_id)) return;
    if (event.type === "balance_depleted") {
      this.apply(event.account_id, this.nextTicket++, event.balance, `balance_depleted ${event.id} via ${via}`);
    } else {
      void this.reread(event.account_id, `re-read after balance_restored ${event.id} via ${via}`);
    }
  }

  // ---- Reads --------------------------------------------------------------------------------------------------

  private async request<T>(path: string, body?: unknown): Promise<T> {
    const response = await fetch(`${this.options.tally_url.replace(/\/+$/, "")}${path}`, {
      method: body === undefined ? "GET" : "POST",
      headers: {
        authorization: `Bearer ${this.options.key}`,
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.any([this.stopping.signal, AbortSignal.timeout(REQUEST_TIMEOUT_MS)]),
    });
    const text = await response.text();
    if (!response.ok) throw problem(response.status, text);
    return JSON.parse(text) as T;
  }

  /** One account, retried with backoff until it succeeds or a newer answer has made it pointless. */
  private async reread(account_id: string, source: string): Promise<void> {
    const first = this.nextTicket;
    for (let delay = BACKOFF_MIN_MS; !this.stopping.signal.aborted; delay = Math.min(delay * 2, BACKOFF_MAX_MS)) {
      if ((this.appliedTicket.get(account_id) ?? 0) > first) return;
      const ticket = this.nextTicket++;
      try {
        const { balance } = await this.request<{ balance: string }>(`/v1/balances/${encodeURIComponent(account_id)}`);
        this.apply(account_id, ticket, balance, source);
        return;
      } catch (error) {
        if (error instanceof HttpError && error.code === "account_not_found") {
          this.apply(account_id, ticket, undefined, source);
          return;
        }
        if (error instanceof HttpError && FATAL_STATUSES.has(error.status)) return this.fail(error);
        if (this.stopping.signal.aborted) return;
        this.log(`reading ${account_id} failed (${describe(error)}); retrying in ${delay} ms`);
        await sleep(delay, this.stopping.signal);
      }
    }
  }

  /** Every guarded balance, in chunks of at most 1,000 ids. Each read at or below zero is an observation. */
  private async bulkLoad(reason: string): Promise<void> {
    const ids = [...this.guarded];
    for (let start = 0; start < ids.length; start += BULK_QUERY_MAX) {
      const ticket = this.nextTicket++;
      const result = await this.request<{ balances: { account_id: string; balance: string }[]; not_found: string[] }>(
        "/v1/balances/query",
        { account_ids: ids.slice(start, start + BULK_QUERY_MAX) },
      );
      for (const { account_id, balance } of result.balances) this.apply(account_id, ticket, balance, reason);
      for (const account_id of result.not_found) this.apply(account_id, ticket, undefined, reason);
    }
    this.synced = true;
    this.markLoaded();
    this.log(`loaded ${ids.length} balances (${reason}): ${this.blocked.size} blocked`);
  }

  /**
   * A bulk load, retried with backoff until it succeeds (or the gateway stops); never rejects. Requests that arrive
   * while one runs are coalesced into one more load after it, since the running load may have read before
   * whatever prompted them.
   */
  private resync(reason: string): Promise<void> {
    this.resyncAgain = true;
    this.resyncing ??= (async () => {
      let delay = BACKOFF_MIN_MS;
      while (this.resyncAgain && !this.stopping.signal.aborted) {
        this.resyncAgain = false;
        try {
          await this.bulkLoad(reason);
          delay = BACKOFF_MIN_MS;
        } catch (error) {
          if (error instanceof HttpError && FATAL_STATUSES.has(error.status)) return this.fail(error);
          if (this.stopping.signal.aborted) return;
          this.resyncAgain = true;
          this.log(`bulk load failed (${describe(error)}); retrying in ${delay} ms`);
          await sleep(delay, this.stopping.signal);
          delay = Math.min(delay * 2, BACKOFF_MAX_MS);
        }
      }
    })().finally(() => {
      this.resyncing = undefined;
    });
    return this.resyncing;
  }

  // ---- Following: SSE -----------------------------------------------------------------------------------------

  private async followStream(): Promise<void> {
    const base = this.options.tally_url.replace(/\/+$/, "");
    let lastEventId: string | undefined;
    /** Set when the state was loaded on the current chain of connections; cleared when resuming is impossible. */
    let loaded = false;
    let lostAt: number | undefined;
    let delay = BACKOFF_MIN_MS;
    while (!this.stopping.signal.aborted) {
      const resume = loaded && lastEventId !== undefined && Date.now() - (lostAt ?? Date.now()) < RESUME_GAP_MAX_MS;
      if (!resume) {
        lastEventId = undefined;
        loaded = false;
      }
      const connection = new AbortController();
      try {
        const response = await fetch(`${base}/v1/events`, {
          headers: {
            authorization: `Bearer ${this.options.key}`,
            accept: "text/event-stream",
            ...(lastEventId === undefined ? {} : { "last-event-id": lastEventId }),
          },
          signal: AbortSignal.any([this.stopping.signal, connection.signal]),
        });
        if (!response.ok || !response.body) throw problem(response.status, await response.text());
        this.log(resume ? `stream resumed after event ${lastEventId}` : "stream connected");
        lostAt = undefined;
        delay = BACKOFF_MIN_MS;
        if (!resume) {
          // Without a cursor the server pinned the stream at its latest event id when it answered: load now
          // (the stream buffers meanwhile), and every later change arrives as an event.
          await this.resync(this.synced ? "reconnected without a usable cursor" : "startup");
          if (this.stopping.signal.aborted) return;
          loaded = true;
        }
        for await (const message of readEvents(response.body, STREAM_IDLE_MS, connection)) {
          const event = parseEvent(message.data);
          if (event) this.onEvent(event, "SSE");
          if (message.id !== undefined) lastEventId = message.id;
        }
        this.log("stream ended by the server; reconnecting"); // tally ends every stream after an hour
      } catch (error) {
        if (this.stopping.signal.aborted) return;
        if (error instanceof HttpError && FATAL_STATUSES.has(error.status)) throw error;
        this.log(`stream lost (${describe(error)}); reconnecting in ${delay} ms`);
      } finally {
        connection.abort();
      }
      lostAt ??= Date.now();
      await sleep(delay, this.stopping.signal);
      delay = Math.min(delay * 2, BACKOFF_MAX_MS);
    }
  }

  // ---- Following: LISTEN ------------------------------------------------------------------------------------------

  private async listen(database_url: string): Promise<void> {
    const channel = this.options.notify_channel ?? "tally_balance_restored";
    const sql = postgres(database_url, {
      max: 1,
      onnotice: () => {},
      connection: { application_name: "tally-gateway-example" },
    });
    this.cleanups.push(() => sql.end({ timeout: 5 }));
    // postgres.js LISTENs on a dedicated connection and re-LISTENs after it reconnects; onlisten runs each time,
    // and whatever was NOTIFYed in between is lost, so each time is a resync.
    let listens = 0;
    await sql.listen(
      channel,
      (payload) => {
        const event = parseEvent(payload);
        if (event) this.onEvent(event, "NOTIFY");
      },
      () => {
        listens++;
        this.log(listens === 1 ? `listening on ${channel}` : `re-listening on ${channel}`);
        void this.resync(listens === 1 ? "startup" : "LISTEN reconnected");
      },
    );
  }
}

// ---- Server-Sent Events ---------------------------------------------------------------------------------------

interface SseMessage {
  id: string | undefined;
  event: string;
  data: string;
}

/**
 * Parses a text/event-stream body (the WHATWG rules that matter here: CR, LF or CRLF line ends, comment lines,
 * multi-line data, an id that persists across messages). Throws if nothing, not even a heartbeat, arrives for
 * `idle_ms`, aborting `connection`.
 */
export async function* readEvents(
  body: ReadableStream<Uint8Array>,
  idle_ms: number,
  connection: AbortController,
): AsyncGenerator<SseMessage> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let data: string[] = [];
  let event = "";
  let id: string | undefined;
  try {
    for (;;) {
      let timer: NodeJS.Timeout | undefined;
      const chunk = await Promise.race([
        reader.read(),
        new Promise<"idle">((resolve) => (timer = setTimeout(() => resolve("idle"), idle_ms))),
      ]).finally(() => clearTimeout(timer));
      if (chunk === "idle") {
        connection.abort();
        throw new Error(`nothing received for ${idle_ms / 1000} s`);
      }
      if (chunk.done) return;
      buffer += decoder.decode(chunk.value, { stream: true });
      for (;;) {
        const end = buffer.search(/\r\n|\r|\n/);
        // A CR at the very end may be the first half of a CRLF split across chunks.
        if (end < 0 || (end === buffer.length - 1 && buffer[end] === "\r")) break;
        const line = buffer.slice(0, end);
        buffer = buffer.slice(end + (buffer.startsWith("\r\n", end) ? 2 : 1));
        if (line === "") {
          if (data.length > 0) yield { id, event: event || "message", data: data.join("\n") };
          data = [];
          event = "";
          continue;
        }
        if (line.startsWith(":")) continue; // a comment: tally's heartbeat
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "data") data.push(value);
        else if (field === "event") event = value;
        else if (field === "id" && !value.includes("\0")) id = value;
      }
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
}

// ---- Helpers ----------------------------------------------------------------------------------------------------

export function parseEvent(text: string): BalanceEvent | undefined {
  try {
    const value = JSON.parse(text) as Partial<BalanceEvent>;
    if (
      typeof value.id === "string" &&
      (value.type === "balance_restored" || value.type === "balance_depleted") &&
      typeof value.account_id === "string" &&
      typeof value.balance === "string"
    ) {
      return { id: value.id, type: value.type, account_id: value.account_id, balance: value.balance, time: String(value.time) };
    }
  } catch {
    // fall through: ignore what is not an event
  }
  return undefined;
}

function problem(status: number, text: string): HttpError {
  try {
    const body = JSON.parse(text) as { code?: string; detail?: string };
    return new HttpError(status, body.code, `${status} ${body.code ?? ""}: ${body.detail ?? text}`);
  } catch {
    return new HttpError(status, undefined, `${status}: ${text.slice(0, 200)}`);
  }
}

function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = error.cause instanceof Error ? `: ${error.cause.message}` : "";
  return `${error.message}${cause}`;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
  });
}

// ---- Running it ---------------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const environment = process.env;
  const key = environment.TALLY_KEY;
  const account_ids = (environment.ACCOUNT_IDS ?? "")
    .split(",")
    .map((id) => id.trim())
    .filter((id) => id !== "");
  if (!key || account_ids.length === 0) {
    process.stderr.write("set TALLY_KEY (balances:read and events:read) and ACCOUNT_IDS (comma-separated)\n");
    process.exit(2);
  }
  const gateway = new Gateway({
    tally_url: environment.TALLY_URL ?? "http://localhost:8080",
    key,
    account_ids,
    database_url: environment.DATABASE_URL || undefined,
    notify_channel: environment.NOTIFY_CHANNEL || undefined,
    resync_interval_ms: Number(environment.RESYNC_INTERVAL_S ?? 0) * 1000,
  });
  const shutdown = () => {
    void gateway.stop().then(() => process.exit(0));
  };
  process.on("SIGINT", shutdown);
  process.on("SIGTERM", shutdown);
  await gateway.start();
  process.stdout.write(
    `${new Date().toISOString()} ready: guarding ${account_ids.length} accounts, blocked: ${
      account_ids.filter((id) => gateway.isBlocked(id)).join(", ") || "none"
    }\n`,
  );
  await gateway.closed;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((error: unknown) => {
    process.stderr.write(`gateway: ${describe(error)}\n`);
    process.exit(1);
  });
}
