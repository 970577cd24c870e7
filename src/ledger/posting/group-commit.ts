import { databaseErrorCode, type Queryable } from "../../db/port.js";
import { outsideRequestScope } from "../../db/pool-gate.js";
import { TallyError } from "../../errors.js";
import { maybeRefreshAfterWrite } from "../balances/checkpoints.js";
import type { LedgerContext } from "../core/context.js";
import { ENTRY_COLUMNS, deltaOf, requestHash, toEntry, type EntryRequest, type EntryRow } from "../core/entry.js";
import { uuidv7 } from "../core/ids.js";
import { insertEntry, quantitiesText, type PostResult } from "./posting.js";

/**
 * Group commit for lock-free single-row posts (usage, credits, overdraft-allowed debits).
 *
 * Each row posted alone costs PostgreSQL a commit (a WAL flush) and tally a round trip; under load both dominate.
 * Here concurrent posts of one process are coalesced: a flush starts at once when none is in flight (a lone post is
 * never held back by a timer), and the next flush takes everything that queued while the previous one ran, up to
 * `rows_per_flush_max`. A flush is one multi-row INSERT, one statement and so one transaction of its own: every
 * row in it commits together, and each post is answered only after that commit.
 *
 * Every promise a single post makes holds per row:
 * - a key already in the ledger with the same body is a replay (the stored entry, `replayed: true`); with a
 *   different body it is 409 `idempotency_key_reused`;
 * - the same key twice in one flush makes one row; the other post is answered against the stored row exactly as if
 *   it had come later (a replay for the same body, 409 for a different one);
 * - an unknown account is 404 for its own post only;
 * - if the grouped statement fails on a row (a constraint, a deadlock), every row of the flush is posted again on
 *   its own, so each gets the answer it would have had alone; a lost connection fails the flush's posts, which
 *   the client retries with the same key.
 * Rows are inserted in (account_id, idempotency_key) order, the order batch posting uses too, so two flushes (of
 * one process or of several) that share keys take them in the same order and cannot deadlock.
 *
 * Bounded: the queue (`queue_rows_max`; beyond it a post is refused at once with 503), the rows per flush, and the
 * time a post may wait in the queue (`wait_max_ms`; one that waited longer is refused with 503, having written
 * nothing).
 */

export interface GroupCommitLimits {
  queue_rows_max: number;
  rows_per_flush_max: number;
  wait_max_ms: number;
}

export const DEFAULT_GROUP_COMMIT_LIMITS: GroupCommitLimits = {
  queue_rows_max: 10_000,
  rows_per_flush_max: 500,
  wait_max_ms: 10_000,
};

/** Counters a test or an operator can read. */
export interface GroupCommitStats {
  flushes: number;
  rows: number;
  /** Flushes whose grouped statement failed and whose rows were posted one by one. */
  fallbacks: number;
  largest_flush: number;
}

interface Pending {
  request: EntryRequest;
  hash: string;
  identity: string;
  enqueued_at: number;
  resolve: (result: PostResult) => void;
  reject: (error: unknown) => void;
}

const INSERT_GROUP_SQL = `
INSERT INTO entries (id, account_id, type, amount, delta, idempotency_key, request_hash, batch_id, description, metadata,
                     original_entry_id, counterpart_entry_id, transfer_id, meter, quantities, price_version)
SELECT row.id::uuid, row.account_id, row.type, row.amount::numeric, row.delta::numeric, row.idempotency_key,
       row.request_hash, row.batch_id::uuid, row.description, row.metadata::jsonb,
       row.original_entry_id::uuid, row.counterpart_entry_id::uuid, row.transfer_id::uuid,
       row.meter, row.quantities::jsonb, row.price_version::integer
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[],
            $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::text[], $16::text[])
  AS row(id, account_id, type, amount, delta, idempotency_key, request_hash, batch_id, description, metadata,
         original_entry_id, counterpart_entry_id, transfer_id, meter, quantities, price_version)
ON CONFLICT (account_id, idempotency_key) DO NOTHING
RETURNING ${ENTRY_COLUMNS}`;

/**
 * The rows a flush did not insert because the key was taken. Its own statement, after the INSERT: the INSERT waited
 * for any conflicting transaction to finish, so this snapshot sees the row that holds each key (rows are never
 * deleted).
 */
const FIND_GROUP_SQL = `
SELECT ${ENTRY_COLUMNS} FROM entries
WHERE (account_id, idempotency_key) IN (SELECT * FROM unnest($1::text[], $2::text[]))`;

const FIND_ONE_SQL = `SELECT ${ENTRY_COLUMNS} FROM entries WHERE account_id = $1 AND idempotency_key = $2`;

/**
 * SQLSTATE classes a grouped statement can fail with because of one row or one unlucky interleaving: data
 * exceptions (22), integrity constraints (23), transaction rollbacks such as a deadlock (40). Posting the rows one
 * by one then gives each its own answer. Anything else (a lost connection, a timeout) would fail alone too.
 */
const RETRY_ALONE_CLASSES = new Set(["22", "23", "40"]);

function identityOf(request: EntryRequest): string {
  // A NUL byte cannot occur in either (both are validated, and PostgreSQL text cannot hold it): an exact separator.
  return `${request.account_id}\u0000${request.idempotency_key}`;
}

function compare(left: string, right: string): number {
  return left < right ? -1 : left > right ? 1 : 0;
}

function metadataText(request: EntryRequest): string | null {
  return request.metadata === null ? null : JSON.stringify(request.metadata);
}

function reused(request: EntryRequest): TallyError {
  return new TallyError(
    "idempotency_key_reused",
    `idempotency key ${JSON.stringify(request.idempotency_key)} was already used on account ${request.account_id} for a different request`,
  );
}

function queueRefusal(detail: string): TallyError {
  return new TallyError("service_unavailable", detail);
}

export class GroupCommitter {
  /** Waiting posts; `head` is the index of the oldest, so taking from the front is O(1). */
  private queue: Pending[] = [];
  private head = 0;
  private in_flight = false;
  private sweeper: NodeJS.Timeout | undefined;
  readonly stats: GroupCommitStats = { flushes: 0, rows: 0, fallbacks: 0, largest_flush: 0 };

  constructor(
    private readonly context: LedgerContext,
    readonly limits: GroupCommitLimits = DEFAULT_GROUP_COMMIT_LIMITS,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Posts are queued in memory only: the count of posts not yet answered. */
  get waiting(): number {
    return this.queue.length - this.head;
  }

  post(request: EntryRequest): Promise<PostResult> {
    if (this.waiting >= this.limits.queue_rows_max) {
      return Promise.reject(queueRefusal(`${this.waiting} posts are already waiting to be written; retry shortly`));
    }
    return new Promise<PostResult>((resolve, reject) => {
      this.queue.push({
        request,
        hash: requestHash(request),
        identity: identityOf(request),
        enqueued_at: this.now(),
        resolve,
        reject,
      });
      this.pump();
      if (this.waiting > 0) this.armSweeper();
    });
  }

  /** Starts a flush if none is in flight and posts are waiting. */
  private pump(): void {
    while (!this.in_flight && this.waiting > 0) {
      const group = this.take();
      if (group.length === 0) continue;
      this.in_flight = true;
      // A flush serves every request in it, and the next flush starts from this one's callback: neither may inherit
      // the deadline or the connection-wait budget of the request that happened to start the chain.
      void outsideRequestScope(() => this.run(group));
    }
  }

  /** Up to rows_per_flush_max posts from the front of the queue, refusing those that waited too long. */
  private take(): Pending[] {
    const group: Pending[] = [];
    const oldest_allowed = this.now() - this.limits.wait_max_ms;
    while (this.waiting > 0 && group.length < this.limits.rows_per_flush_max) {
      const pending = this.queue[this.head]!;
      this.queue[this.head++] = undefined as unknown as Pending;
      if (pending.enqueued_at < oldest_allowed) {
        pending.reject(queueRefusal(`the post waited more than ${this.limits.wait_max_ms} ms to be written and was not written; retry`));
      } else {
        group.push(pending);
      }
    }
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
    return group;
  }

  /**
   * While a flush is in flight, posts that wait longer than wait_max_ms are refused without waiting for it to end
   * (a flush is bounded by the statement timeout, which can be longer).
   */
  private armSweeper(): void {
    if (this.sweeper !== undefined) return;
    this.sweeper = setTimeout(() => {
      this.sweeper = undefined;
      const oldest_allowed = this.now() - this.limits.wait_max_ms;
      while (this.waiting > 0 && this.queue[this.head]!.enqueued_at < oldest_allowed) {
        const pending = this.queue[this.head]!;
        this.queue[this.head++] = undefined as unknown as Pending;
        pending.reject(queueRefusal(`the post waited more than ${this.limits.wait_max_ms} ms to be written and was not written; retry`));
      }
      if (this.waiting > 0) this.armSweeper();
    }, this.limits.wait_max_ms);
    this.sweeper.unref();
  }

  private async run(group: Pending[]): Promise<void> {
    let answers: Map<Pending, PostResult | Error>;
    let inserted_by_account: Map<string, number>;
    try {
      ({ answers, inserted_by_account } = await this.write(group));
    } catch (error) {
      // Nothing is known to be written (or the connection broke mid-way): each post fails, and a client retrying
      // with the same key gets exactly one row whatever happened.
      answers = new Map(group.map((pending) => [pending, error instanceof Error ? error : new Error(String(error))]));
      inserted_by_account = new Map();
    } finally {
      this.in_flight = false;
      this.pump();
    }
    // As a post alone does: the refresh draw (rows / refresh_every per account) before the answer. The next flush
    // is already running meanwhile.
    if (inserted_by_account.size > 0) await maybeRefreshAfterWrite(this.context, inserted_by_account);
    for (const pending of group) {
      const answer = answers.get(pending)!;
      if (answer instanceof Error) pending.reject(answer);
      else pending.resolve(answer);
    }
  }

  private async write(group: Pending[]): Promise<{ answers: Map<Pending, PostResult | Error>; inserted_by_account: Map<string, number> }> {
    const { database, known_accounts } = this.context;
    this.stats.flushes++;
    this.stats.rows += group.length;
    this.stats.largest_flush = Math.max(this.stats.largest_flush, group.length);
    const answers = new Map<Pending, PostResult | Error>();
    const inserted_by_account = new Map<string, number>();

    const missing = new Set(await known_accounts.missing(database, group.map((pending) => pending.request.account_id)));
    const live: Pending[] = [];
    for (const pending of group) {
      if (missing.has(pending.request.account_id)) {
        const account_id = pending.request.account_id;
        answers.set(pending, new TallyError("account_not_found", `account ${account_id} does not exist`, { account_ids: [account_id] }));
      } else {
        live.push(pending);
      }
    }
    if (live.length === 0) return { answers, inserted_by_account };

    // One row per key: the first post of a key is its candidate row; the others are answered against whatever row
    // ends up holding the key.
    const candidates = new Map<string, Pending>();
    for (const pending of live) if (!candidates.has(pending.identity)) candidates.set(pending.identity, pending);
    const rows = [...candidates.values()].sort(
      (left, right) =>
        compare(left.request.account_id, right.request.account_id) ||
        compare(left.request.idempotency_key, right.request.idempotency_key),
    );

    let stored: Map<string, { row: EntryRow; inserted_by: Pending | undefined }>;
    try {
      stored = await this.insertGroup(database, rows);
    } catch (error) {
      const sqlstate = databaseErrorCode(error);
      if (live.length === 1 || sqlstate === undefined || !RETRY_ALONE_CLASSES.has(sqlstate.slice(0, 2))) throw error;
      this.stats.fallbacks++;
      this.context.logger.warn({ err: error, rows: live.length }, "a grouped post failed; posting its rows one by one");
      await this.writeAlone(database, live, answers, inserted_by_account);
      return { answers, inserted_by_account };
    }

    for (const pending of live) {
      const holder = stored.get(pending.identity);
      if (!holder) {
        answers.set(pending, new Error("a grouped insert neither wrote nor found the row holding a key"));
      } else if (holder.inserted_by === pending) {
        answers.set(pending, { entry: toEntry(holder.row), replayed: false });
        inserted_by_account.set(pending.request.account_id, (inserted_by_account.get(pending.request.account_id) ?? 0) + 1);
      } else if (holder.row.request_hash === pending.hash) {
        answers.set(pending, { entry: toEntry(holder.row), replayed: true });
      } else {
        answers.set(pending, reused(pending.request));
      }
    }
    return { answers, inserted_by_account };
  }

  /** The grouped INSERT, then one look-up of the keys it found taken; the row now holding each key. */
  private async insertGroup(
    database: Queryable,
    rows: Pending[],
  ): Promise<Map<string, { row: EntryRow; inserted_by: Pending | undefined }>> {
    const byIdentity = new Map(rows.map((pending) => [pending.identity, pending]));
    const stored = new Map<string, { row: EntryRow; inserted_by: Pending | undefined }>();
    if (rows.length === 1) {
      // A lone post (the common case at low load) takes the plain single-row statement, cheaper than unnest().
      const [only] = rows;
      const row = await insertEntry(database, only!.request, only!.hash);
      if (row) {
        stored.set(only!.identity, { row, inserted_by: only });
      } else {
        const [existing] = await database.query<EntryRow>(FIND_ONE_SQL, [only!.request.account_id, only!.request.idempotency_key]);
        if (existing) stored.set(only!.identity, { row: existing, inserted_by: undefined });
      }
      return stored;
    }
    const requests = rows.map((pending) => pending.request);
    const returned = await database.query<EntryRow>(INSERT_GROUP_SQL, [
      requests.map(() => uuidv7()),
      requests.map((request) => request.account_id),
      requests.map((request) => request.type),
      requests.map((request) => request.amount),
      requests.map((request) => deltaOf(request.type, request.amount, request.direction)),
      requests.map((request) => request.idempotency_key),
      rows.map((pending) => pending.hash),
      requests.map((request) => request.batch_id),
      requests.map((request) => request.description),
      requests.map(metadataText),
      requests.map((request) => request.original_entry_id ?? null),
      requests.map((request) => request.counterpart_entry_id ?? null),
      requests.map((request) => request.transfer_id ?? null),
      requests.map((request) => request.meter ?? null),
      requests.map(quantitiesText),
      requests.map((request) => (request.price_version === undefined || request.price_version === null ? null : String(request.price_version))),
    ]);
    for (const row of returned) {
      const identity = `${row.account_id}\u0000${row.idempotency_key}`;
      stored.set(identity, { row, inserted_by: byIdentity.get(identity) });
    }
    if (stored.size < rows.length) {
      const taken = rows.filter((pending) => !stored.has(pending.identity));
      const found = await database.query<EntryRow>(FIND_GROUP_SQL, [
        taken.map((pending) => pending.request.account_id),
        taken.map((pending) => pending.request.idempotency_key),
      ]);
      for (const row of found) stored.set(`${row.account_id}\u0000${row.idempotency_key}`, { row, inserted_by: undefined });
    }
    return stored;
  }

  /**
   * Each post on its own statement, all at once: a single-row insert holds one key, so these cannot deadlock, and
   * two posts of the same key resolve as two concurrent single posts do (one row; the other a replay or a 409).
   */
  private async writeAlone(
    database: Queryable,
    live: Pending[],
    answers: Map<Pending, PostResult | Error>,
    inserted_by_account: Map<string, number>,
  ): Promise<void> {
    await Promise.all(
      live.map(async (pending) => {
        const { request, hash } = pending;
        try {
          const row = await insertEntry(database, request, hash);
          if (row) {
            answers.set(pending, { entry: toEntry(row), replayed: false });
            inserted_by_account.set(request.account_id, (inserted_by_account.get(request.account_id) ?? 0) + 1);
            return;
          }
          const [existing] = await database.query<EntryRow>(FIND_ONE_SQL, [request.account_id, request.idempotency_key]);
          if (!existing) answers.set(pending, new Error("insert conflicted on the idempotency key but no row holds it"));
          else if (existing.request_hash !== hash) answers.set(pending, reused(request));
          else answers.set(pending, { entry: toEntry(existing), replayed: true });
        } catch (error) {
          answers.set(pending, error instanceof Error ? error : new Error(String(error)));
        }
      }),
    );
  }
}

const committers = new WeakMap<LedgerContext, GroupCommitter>();

/** The committer of a ledger context (one per process, as the context is), created on first use. */
export function groupCommitterOf(context: LedgerContext): GroupCommitter {
  let committer = committers.get(context);
  if (!committer) {
    committer = new GroupCommitter(context);
    committers.set(context, committer);
  }
  return committer;
}

/** Replaces the limits of a context's committer (from configuration, or a test's tight bounds). */
export function configureGroupCommit(
  context: LedgerContext,
  limits: Partial<GroupCommitLimits>,
  now?: () => number,
): GroupCommitter {
  const committer = new GroupCommitter(context, { ...DEFAULT_GROUP_COMMIT_LIMITS, ...limits }, now);
  committers.set(context, committer);
  return committer;
}
