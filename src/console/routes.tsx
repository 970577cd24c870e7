import { randomUUID } from "node:crypto";
import { Hono, type Context } from "hono";
import { bodyLimit } from "hono/body-limit";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { z } from "zod";
import { FAILED_AUTHENTICATION_DEFAULTS, FailedAuthentications } from "../auth/failed-authentications.js";
import type { Principal, Scope } from "../auth/scopes.js";
import { CREDIT_TYPES, ENTRY_TYPES, type EntryType } from "../db/schema.js";
import { ERROR_CATALOGUE, TallyError } from "../errors.js";
import { allows, type Authenticators } from "../http/auth.js";
import { decodeCursor, encodeCursor } from "../http/cursor.js";
import { AccountIdSchema, AmountSchema, DescriptionSchema, IdempotencyKeySchema, canonicalAmount } from "../http/schemas.js";
import { ACCOUNT_SEARCH_OFFSET_MAX, searchAccounts } from "../ledger/balances/account-search.js";
import { getAccount } from "../ledger/core/accounts.js";
import type { LedgerContext } from "../ledger/core/context.js";
import type { EntryRequest } from "../ledger/core/entry.js";
import { latestEventId } from "../ledger/events/events.js";
import { listHistory, type HistoryFilters, type HistoryItem } from "../ledger/history/history.js";
import { STATS_BUCKETS_MAX, accountStats, bucketCount } from "../ledger/history/stats.js";
import { listHolds } from "../ledger/holds/read.js";
import { expiringNext } from "../ledger/lots/expiring-next.js";
import { listLots } from "../ledger/lots/listing.js";
import { postCredit } from "../ledger/posting/credits.js";
import { postDebit } from "../ledger/posting/debits.js";
import { ensureAccountsExist, type PostResult } from "../ledger/posting/posting.js";
import type { Signer } from "../signing/signer.js";
import { CONSOLE_CSS, LIVE_JS } from "./assets.js";
import { consoleEventStream } from "./live.js";
import { StatsChart } from "./chart.js";
import { ACCOUNT_PAGE_HOLDS_SHOWN, ACCOUNT_PAGE_LOTS_SHOWN, BalanceFigures, Expiring, HoldsTable, LotsTable, time } from "./figures.js";
import { checkFormToken, formToken, readSession, signIn, signOut, type Session } from "./session.js";
import { Amount, ErrorPage, Layout, SignInPage } from "./views.js";

export interface ConsoleDependencies {
  ledger: LedgerContext;
  signer: Signer;
  authenticators: Authenticators;
}

type ConsoleEnv = { Variables: { session: Session; csrf: string } };

/** Only tally's own files: no inline script or style, no other origin, no framing. */
export const CONSOLE_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
const FORM_BYTES_MAX = 16 * 1024;
const ACCOUNTS_PAGE_SIZE = 50;
const HISTORY_PAGE_SIZE = 25;
const BATCH_ROWS_SHOWN_MAX = 200;
const STATS_DAYS_DEFAULT = 30;
const DATE = /^\d{4}-\d{2}-\d{2}$/;

const HistoryCursorSchema = z.strictObject({
  snapshot: z.string(),
  position: z.string().regex(/^[1-9][0-9]{0,18}$/),
  total: z.number().int().min(0).optional(),
  balance_below: z.string().nullable().optional(),
});

const ACTIONS = {
  credit: { title: "Post a credit", scope: "credits:write" as Scope, verb: "Credit" },
  correction: { title: "Post a correction (strict debit)", scope: "debits:write" as Scope, verb: "Debit" },
} as const;
type ActionKind = keyof typeof ACTIONS;

const ActionFormSchema = z.object({
  type: z.enum(CREDIT_TYPES).optional(),
  amount: AmountSchema,
  description: DescriptionSchema.optional(),
  idempotency_key: IdempotencyKeySchema,
});

function text(value: unknown): string | undefined {
  return typeof value === "string" && value.trim() !== "" ? value.trim() : undefined;
}

function page(c: Context<ConsoleEnv>, status: ContentfulStatusCode, title: string, message: string) {
  const session = c.get("session") as Session | undefined;
  return c.html(<ErrorPage principal={session?.principal} csrf={c.get("csrf")} title={title} message={message} />, status);
}

function forbidden(c: Context<ConsoleEnv>, scope: Scope) {
  return page(c, 403, "Not allowed", `Your key does not have the ${scope} scope this needs.`);
}

/**
 * A state-changing request must come from this origin: browsers send Origin (and Sec-Fetch-Site) on every form post
 * and fetch, so a cross-site form is refused here before its token is even read.
 */
function sameOrigin(c: Context): boolean {
  const origin = c.req.header("origin");
  if (origin !== undefined && origin !== new URL(c.req.url).origin) return false;
  const site = c.req.header("sec-fetch-site");
  return site === undefined || site === "same-origin" || site === "none";
}

/** An end user sees only their own account; a service key needs the scope. The same rule as the API's. */
function mayRead(principal: Principal, account_id: string, scope: Scope): boolean {
  if (principal.kind === "user" && principal.account_id !== account_id) return false;
  return allows(principal, scope);
}

function mayWrite(principal: Principal, scope: Scope): boolean {
  return principal.kind === "service" && allows(principal, scope);
}

export function consoleRoutes(deps: ConsoleDependencies) {
  const { ledger, signer } = deps;
  const app = new Hono<ConsoleEnv>();

  app.use("/console/*", async (c, next) => {
    await next();
    c.header("Content-Security-Policy", CONSOLE_CSP);
    c.header("X-Content-Type-Options", "nosniff");
    c.header("X-Frame-Options", "DENY");
    // Not no-referrer: with it, Chromium sends `Origin: null` on form posts, and the origin check needs the real one.
    c.header("Referrer-Policy", "same-origin");
    if (!c.req.path.startsWith("/console/assets/")) c.header("Cache-Control", "no-store");
  });
  app.use("/console", async (c, next) => {
    await next();
    c.header("Content-Security-Policy", CONSOLE_CSP);
  });
  // A form post must come from this origin (Origin header check); the signed form token below is the second lock.
  app.use("/console/*", async (c, next) => {
    if (c.req.method !== "GET" && c.req.method !== "HEAD" && !sameOrigin(c)) {
      return c.html(<ErrorPage title="Refused" message="A form may only be sent from this console's own pages." />, 403);
    }
    return next();
  });
  app.use("/console/*", bodyLimit({ maxSize: FORM_BYTES_MAX, onError: (c) => c.text("the form is too large", 413) }));

  app.get("/console/assets/console.css", (c) => c.body(CONSOLE_CSS, 200, { "Content-Type": "text/css; charset=utf-8", "Cache-Control": "max-age=300" }));
  app.get("/console/assets/live.js", (c) => c.body(LIVE_JS, 200, { "Content-Type": "text/javascript; charset=utf-8", "Cache-Control": "max-age=300" }));

  app.get("/console/sign-in", (c) => c.html(<SignInPage />));
  // Failed sign-ins count per client address, as failed bearer authentications do (src/auth/failed-authentications.ts).
  const failures = deps.authenticators.failed_authentications ?? new FailedAuthentications(FAILED_AUTHENTICATION_DEFAULTS);
  app.post("/console/sign-in", async (c) => {
    const address = (c.env as { incoming?: { socket?: { remoteAddress?: string } } } | undefined)?.incoming?.socket?.remoteAddress;
    const throttled_s = address === undefined ? 0 : failures.throttledFor(address);
    if (throttled_s > 0) return c.html(<SignInPage error={`Too many failed sign-ins from this address; try again in ${throttled_s} s.`} />, 429);
    const form = await c.req.parseBody();
    const credential = typeof form.credential === "string" ? form.credential.trim() : "";
    const principal = credential.length > 0 && credential.length <= 4096 ? await signIn(c, deps, credential) : undefined;
    if (!principal) {
      if (address !== undefined) failures.record(address);
      return c.html(<SignInPage error="That key or token is not valid." />, 401);
    }
    return c.redirect(principal.kind === "user" ? `/console/accounts/${encodeURIComponent(principal.account_id)}` : "/console/accounts", 303);
  });

  // Everything below needs a session; every POST below also needs the session's form token.
  app.use("/console/*", async (c, next) => {
    if (c.req.path.startsWith("/console/assets/") || c.req.path === "/console/sign-in") return next();
    const session = await readSession(c, deps);
    if (!session) {
      if (c.req.method === "GET" && !c.req.path.startsWith("/console/events")) return c.redirect("/console/sign-in", 303);
      return c.html(<SignInPage error="Your session has ended; sign in again." />, 401);
    }
    c.set("session", session);
    c.set("csrf", await formToken(signer, session));
    if (c.req.method === "POST") {
      const form = await c.req.parseBody();
      if (!(await checkFormToken(signer, session, form.csrf))) {
        return page(c, 403, "Form expired or forged", "This form was not issued to your session (or is over an hour old). Go back, reload and try again.");
      }
    }
    return next();
  });

  app.get("/console", (c) => {
    const principal = c.get("session").principal;
    return c.redirect(principal.kind === "user" ? `/console/accounts/${encodeURIComponent(principal.account_id)}` : "/console/accounts", 303);
  });

  app.post("/console/sign-out", (c) => {
    signOut(c);
    return c.redirect("/console/sign-in", 303);
  });

  app.get("/console/accounts", async (c) => {
    const { principal } = c.get("session");
    if (principal.kind === "user") return c.redirect(`/console/accounts/${encodeURIComponent(principal.account_id)}`, 303);
    if (!allows(principal, "balances:read")) return forbidden(c, "balances:read");
    const prefix = (text(c.req.query("prefix")) ?? "").slice(0, 128);
    const order = c.req.query("order") === "balance" ? "balance" : "id";
    const page_number = Math.max(0, Math.min(Math.floor(ACCOUNT_SEARCH_OFFSET_MAX / ACCOUNTS_PAGE_SIZE), Number.parseInt(c.req.query("page") ?? "0", 10) || 0));
    const result = await searchAccounts(ledger, { prefix, order, limit: ACCOUNTS_PAGE_SIZE, offset: page_number * ACCOUNTS_PAGE_SIZE });
    const live = allows(principal, "events:read") ? await latestEventId(ledger.database) : undefined;
    const link = (page_to: number) => `/console/accounts?${new URLSearchParams({ prefix, order, page: String(page_to) })}`;
    return c.html(
      <Layout title="Accounts" principal={principal} csrf={c.get("csrf")}>
        <h1>Accounts</h1>
        <form method="get" action="/console/accounts" class="inline" role="search">
          <label>
            Account id starts with
            <input type="search" name="prefix" value={prefix} maxlength={128} />
          </label>
          <label>
            Sort by
            <select name="order">
              <option value="id" selected={order === "id"}>
                id
              </option>
              <option value="balance" selected={order === "balance"}>
                balance, lowest first
              </option>
            </select>
          </label>
          <button type="submit">Search</button>
        </form>
        <p id="live-status" class="visually-hidden" aria-live="polite"></p>
        <table data-live-after={live}>
          <caption class="visually-hidden">Accounts with their balances</caption>
          <thead>
            <tr>
              <th scope="col">Account</th>
              <th scope="col" class="number">
                Balance
              </th>
              <th scope="col" class="number">
                Available
              </th>
              <th scope="col" class="number">
                Held
              </th>
              <th scope="col">Expiring next</th>
              <th scope="col">Status</th>
              <th scope="col">Created</th>
            </tr>
          </thead>
          <tbody>
            {result.accounts.map((account) => (
              <tr data-account-id={account.id}>
                <td>
                  <a href={`/console/accounts/${encodeURIComponent(account.id)}`}>{account.id}</a>
                </td>
                <td class="number">
                  <Amount value={account.balance} />
                </td>
                <td class="number" data-available>
                  <Amount value={account.available} />
                </td>
                <td class="number" data-held>
                  {account.held}
                </td>
                <td data-expiring>
                  <Expiring value={account.expiring_next} />
                </td>
                <td data-status-for={account.id} class={account.balance.startsWith("-") || account.balance === "0" ? "status-depleted" : undefined}>
                  {account.balance.startsWith("-") || account.balance === "0" ? "at or below zero" : ""}
                </td>
                <td>{time(account.created_at)}</td>
              </tr>
            ))}
          </tbody>
        </table>
        {result.accounts.length === 0 ? <p>No accounts match.</p> : null}
        {result.accounts.some((account) => account.expiring_next?.exact === false) ? (
          <p class="muted">
            “up to … not before …”: so much usage arrived since that account's credit lots were last folded that this list shows a bound; the account's
            own page shows the exact figure.
          </p>
        ) : null}
        <nav aria-label="Pages">
          {page_number > 0 ? <a href={link(page_number - 1)}>Previous page</a> : null}{" "}
          {result.has_more && (page_number + 1) * ACCOUNTS_PAGE_SIZE <= ACCOUNT_SEARCH_OFFSET_MAX ? <a href={link(page_number + 1)}>Next page</a> : null}
        </nav>
        {live === undefined ? null : <script src="/console/assets/live.js" defer></script>}
      </Layout>,
    );
  });

  // Live marking on the accounts page follows the event stream (live.ts); the same scope as GET /v1/events.
  const eventStream = consoleEventStream(ledger);
  app.get("/console/events/stream", async (c) => {
    const { principal } = c.get("session");
    if (!mayWrite(principal, "events:read")) return c.text("this key does not have the events:read scope", 403);
    return eventStream(c);
  });

  app.get("/console/accounts/:id", async (c) => {
    const { principal } = c.get("session");
    const account_id = c.req.param("id");
    if (!AccountIdSchema.safeParse(account_id).success) return page(c, 404, "No such account", "That is not an account id.");
    if (!mayRead(principal, account_id, "balances:read") || !allows(principal, "history:read")) return forbidden(c, "history:read");
    const type = ENTRY_TYPES.find((candidate) => candidate === c.req.query("type"));
    const search = text(c.req.query("search"))?.slice(0, 200);
    const from_date = DATE.test(c.req.query("from") ?? "") ? c.req.query("from") : undefined;
    const to_date = DATE.test(c.req.query("to") ?? "") ? c.req.query("to") : undefined;
    const interval = c.req.query("interval") === "week" ? "week" : "day";
    const filters: HistoryFilters = {
      types: type === undefined ? undefined : [type as EntryType],
      search: search?.includes("\u0000") ? undefined : search,
      from: from_date === undefined ? undefined : `${from_date}T00:00:00.000Z`,
      to: to_date === undefined ? undefined : `${to_date}T23:59:59.999Z`,
    };
    const binding = ["console-history", account_id, filters];
    let after;
    try {
      const cursor = c.req.query("cursor");
      after = cursor === undefined ? undefined : await decodeCursor(signer, binding, cursor.slice(0, 2048), HistoryCursorSchema);
    } catch (error) {
      if (error instanceof TallyError) return page(c, 400, "Stale link", error.detail);
      throw error;
    }
    let account;
    try {
      account = await getAccount(ledger, account_id);
    } catch (error) {
      if (error instanceof TallyError && error.code === "account_not_found") return page(c, 404, "No such account", error.detail);
      throw error;
    }
    const expiring = (await expiringNext(ledger, [account_id])).get(account_id) ?? null;
    const holds = await listHolds(ledger, account_id, { status: "active", limit: ACCOUNT_PAGE_HOLDS_SHOWN, before_id: undefined });
    const lots = await listLots(ledger, { account_id, status: "open", limit: ACCOUNT_PAGE_LOTS_SHOWN, signer });
    const history = await listHistory(ledger, { account_id, group_batches: true, limit: HISTORY_PAGE_SIZE, offset: 0, after, filters });
    const next = history.next === undefined ? undefined : await encodeCursor(signer, binding, { ...history.next });
    const expand = c.req.query("expand");
    const expanded = expand === undefined ? undefined : history.items.find((item) => item.batch_id === expand && item.batch_count > 1);
    const batch_rows = expanded === undefined ? [] : await batchRows(ledger, account_id, expanded);
    const stats_to = to_date === undefined ? new Date() : new Date(`${to_date}T23:59:59.999Z`);
    let stats_from = from_date === undefined ? new Date(stats_to.getTime() - STATS_DAYS_DEFAULT * 86_400_000) : new Date(`${from_date}T00:00:00.000Z`);
    if (stats_from >= stats_to || bucketCount(stats_from, stats_to, interval) > STATS_BUCKETS_MAX) stats_from = new Date(stats_to.getTime() - STATS_DAYS_DEFAULT * 86_400_000);
    const stats = await accountStats(ledger, { account_id, from: stats_from, to: stats_to, interval });
    const query = (extra: Record<string, string>) => {
      const parameters = new URLSearchParams();
      if (type) parameters.set("type", type);
      if (search) parameters.set("search", search);
      if (from_date) parameters.set("from", from_date);
      if (to_date) parameters.set("to", to_date);
      if (interval === "week") parameters.set("interval", "week");
      for (const [key, value] of Object.entries(extra)) parameters.set(key, value);
      return `/console/accounts/${encodeURIComponent(account_id)}?${parameters}`;
    };
    const posted = c.req.query("posted");
    return c.html(
      <Layout title={account_id} principal={principal} csrf={c.get("csrf")}>
        <h1>
          Account <code>{account_id}</code>
        </h1>
        {posted ? (
          <p class="notice" role="status">
            {c.req.query("replayed") === "true" ? `Already posted: entry ${posted} (the form was sent twice; it was written once).` : `Posted entry ${posted}.`}
          </p>
        ) : null}
        <BalanceFigures balance={account.balance} available={account.available} expiring={expiring} />
        {principal.kind === "service" ? (
          <p>
            <a href={`/console/accounts/${encodeURIComponent(account_id)}/credit`}>Post a credit</a> ·{" "}
            <a href={`/console/accounts/${encodeURIComponent(account_id)}/correction`}>Post a correction</a>
          </p>
        ) : null}
        <HoldsTable holds={holds.holds} more={holds.next_before_id !== undefined} />
        <LotsTable lots={lots.lots} more={lots.next_cursor !== null} />
        <h2>Spent and earned</h2>
        <StatsChart stats={stats} />
        <p class="muted">
          {`${stats.from.slice(0, 10)} to ${stats.to.slice(0, 10)} per ${stats.interval}: spent ${stats.totals.spent}, earned ${stats.totals.earned}, net ${stats.totals.net}`}
        </p>
        <h2>History</h2>
        <form method="get" action={`/console/accounts/${encodeURIComponent(account_id)}`} class="inline">
          <label>
            Type
            <select name="type">
              <option value="">any</option>
              {ENTRY_TYPES.map((candidate) => (
                <option value={candidate} selected={candidate === type}>
                  {candidate}
                </option>
              ))}
            </select>
          </label>
          <label>
            Description contains
            <input type="search" name="search" value={search ?? ""} maxlength={200} />
          </label>
          <label>
            From
            <input type="date" name="from" value={from_date ?? ""} />
          </label>
          <label>
            To
            <input type="date" name="to" value={to_date ?? ""} />
          </label>
          <label>
            Chart per
            <select name="interval">
              <option value="day" selected={interval === "day"}>
                day
              </option>
              <option value="week" selected={interval === "week"}>
                week
              </option>
            </select>
          </label>
          <button type="submit">Filter</button>
        </form>
        <table>
          <caption class="visually-hidden">History, newest first, with the balance after each item</caption>
          <thead>
            <tr>
              <th scope="col">Time</th>
              <th scope="col">Type</th>
              <th scope="col">Description</th>
              <th scope="col" class="number">
                Change
              </th>
              <th scope="col" class="number">
                Balance after
              </th>
            </tr>
          </thead>
          <tbody>
            {history.items.map((item) => (
              <>
                <tr data-item-id={item.id}>
                  <td>{item.created_at.slice(0, 19).replace("T", " ")}</td>
                  <td>{item.type}</td>
                  <td>
                    {item.description ?? ""}
                    {item.batch_count > 1 ? (
                      <>
                        {" "}
                        <a href={query(expanded?.id === item.id ? {} : { expand: item.batch_id ?? "" })} aria-expanded={expanded?.id === item.id ? "true" : "false"}>
                          {expanded?.id === item.id ? "hide" : "show"} batch of {item.batch_count}
                        </a>
                      </>
                    ) : null}
                  </td>
                  <td class="number">
                    <Amount value={item.delta} />
                  </td>
                  <td class="number" data-balance-after>
                    <Amount value={item.balance_after} />
                  </td>
                </tr>
                {expanded?.id === item.id
                  ? batch_rows.map((row) => (
                      <tr class="batch-row">
                        <td>{row.created_at.slice(0, 19).replace("T", " ")}</td>
                        <td>{row.type}</td>
                        <td>{row.description ?? ""}</td>
                        <td class="number">
                          <Amount value={row.delta} />
                        </td>
                        <td class="number muted">in batch</td>
                      </tr>
                    ))
                  : null}
              </>
            ))}
          </tbody>
        </table>
        {history.items.length === 0 ? <p>No history matches.</p> : null}
        <p class="muted">{`${history.total} items`}</p>
        <nav aria-label="Pages">
          {after === undefined ? null : <a href={query({})}>First page</a>} {next === undefined ? null : <a href={query({ cursor: next })}>Older</a>}
        </nav>
      </Layout>,
    );
  });

  app.get("/console/accounts/:id/:action{credit|correction}", (c) => {
    const { principal } = c.get("session");
    const account_id = c.req.param("id");
    const kind = c.req.param("action") as ActionKind;
    if (!mayWrite(principal, ACTIONS[kind].scope)) return forbidden(c, ACTIONS[kind].scope);
    return c.html(
      <ActionForm principal={principal} csrf={c.get("csrf")} account_id={account_id} kind={kind} idempotency_key={`console-${randomUUID()}`} values={{}} />,
    );
  });

  app.post("/console/accounts/:id/:action{credit|correction}/confirm", async (c) => {
    const { principal } = c.get("session");
    const account_id = c.req.param("id");
    const kind = c.req.param("action") as ActionKind;
    if (!mayWrite(principal, ACTIONS[kind].scope)) return forbidden(c, ACTIONS[kind].scope);
    const form = await c.req.parseBody();
    const values = { type: text(form.type), amount: text(form.amount), description: text(form.description) };
    const parsed = ActionFormSchema.safeParse({ ...values, type: kind === "credit" ? values.type : undefined, idempotency_key: form.idempotency_key });
    const key = typeof form.idempotency_key === "string" ? form.idempotency_key : `console-${randomUUID()}`;
    if (!parsed.success || (kind === "credit" && parsed.data.type === undefined)) {
      const message = parsed.success ? "choose a credit type" : parsed.error.issues.map((issue) => `${issue.path.join(".")}: ${issue.message}`).join("; ");
      return c.html(<ActionForm principal={principal} csrf={c.get("csrf")} account_id={account_id} kind={kind} idempotency_key={key} values={values} error={message} />, 400);
    }
    const amount = canonicalAmount(parsed.data.amount);
    return c.html(
      <Layout title="Confirm" principal={principal} csrf={c.get("csrf")}>
        <h1>Confirm: {ACTIONS[kind].title}</h1>
        <dl>
          <dt>Account</dt>
          <dd>{account_id}</dd>
          {kind === "credit" ? (
            <>
              <dt>Type</dt>
              <dd>{parsed.data.type}</dd>
            </>
          ) : null}
          <dt>{ACTIONS[kind].verb}</dt>
          <dd data-testid="confirm-amount">{amount}</dd>
          <dt>Description</dt>
          <dd>{parsed.data.description ?? "—"}</dd>
        </dl>
        <form method="post" action={`/console/accounts/${encodeURIComponent(account_id)}/${kind}`}>
          <input type="hidden" name="csrf" value={c.get("csrf")} />
          <input type="hidden" name="idempotency_key" value={parsed.data.idempotency_key} />
          {kind === "credit" ? <input type="hidden" name="type" value={parsed.data.type} /> : null}
          <input type="hidden" name="amount" value={amount} />
          <input type="hidden" name="description" value={parsed.data.description ?? ""} />
          <button type="submit">Confirm and post</button> <a href={`/console/accounts/${encodeURIComponent(account_id)}`}>Cancel</a>
        </form>
      </Layout>,
    );
  });

  app.post("/console/accounts/:id/:action{credit|correction}", async (c) => {
    const { principal } = c.get("session");
    const account_id = c.req.param("id");
    const kind = c.req.param("action") as ActionKind;
    if (!mayWrite(principal, ACTIONS[kind].scope)) return forbidden(c, ACTIONS[kind].scope);
    if (!AccountIdSchema.safeParse(account_id).success) return page(c, 404, "No such account", "That is not an account id.");
    const form = await c.req.parseBody();
    const parsed = ActionFormSchema.safeParse({
      type: kind === "credit" ? text(form.type) : undefined,
      amount: text(form.amount),
      description: text(form.description),
      idempotency_key: form.idempotency_key,
    });
    if (!parsed.success || (kind === "credit" && parsed.data.type === undefined)) return page(c, 400, "Not posted", "The form is incomplete; start again.");
    const request: EntryRequest = {
      account_id,
      type: kind === "credit" ? parsed.data.type! : "removal",
      amount: canonicalAmount(parsed.data.amount),
      idempotency_key: parsed.data.idempotency_key,
      batch_id: null,
      description: parsed.data.description ?? null,
      metadata: { source: "console", key_id: principal.kind === "service" ? principal.key_id : null },
    };
    let result: PostResult;
    try {
      result = kind === "credit" ? await postCredit(ledger, request) : await postDebit(ledger, request, { allow_overdraft: false });
    } catch (error) {
      if (error instanceof TallyError) return page(c, ERROR_CATALOGUE[error.code].status as ContentfulStatusCode, "Not posted", error.detail);
      throw error;
    }
    const target = `/console/accounts/${encodeURIComponent(account_id)}?${new URLSearchParams({ posted: result.entry.id, replayed: String(result.replayed) })}`;
    return c.redirect(target, 303);
  });

  return app;
}

/** A batch's own rows: the ungrouped listing over the batch's time span, kept to that batch, bounded. */
async function batchRows(ledger: LedgerContext, account_id: string, item: HistoryItem): Promise<HistoryItem[]> {
  await ensureAccountsExist(ledger, [account_id]);
  const page = await listHistory(ledger, {
    account_id,
    group_batches: false,
    limit: BATCH_ROWS_SHOWN_MAX,
    offset: 0,
    after: undefined,
    filters: { types: undefined, search: undefined, from: item.first_created_at, to: item.last_created_at },
  });
  return page.items.filter((row) => row.batch_id === item.batch_id);
}

function ActionForm(props: {
  principal: Principal;
  csrf: string;
  account_id: string;
  kind: ActionKind;
  idempotency_key: string;
  values: { type?: string; amount?: string; description?: string };
  error?: string;
}) {
  const action = ACTIONS[props.kind];
  return (
    <Layout title={action.title} principal={props.principal} csrf={props.csrf}>
      <h1>
        {action.title} to <code>{props.account_id}</code>
      </h1>
      {props.error ? (
        <p class="error" role="alert">
          {props.error}
        </p>
      ) : null}
      {props.kind === "correction" ? <p>A strict debit: refused if the balance cannot cover it.</p> : null}
      <form method="post" action={`/console/accounts/${encodeURIComponent(props.account_id)}/${props.kind}/confirm`} class="inline">
        <input type="hidden" name="csrf" value={props.csrf} />
        <input type="hidden" name="idempotency_key" value={props.idempotency_key} />
        {props.kind === "credit" ? (
          <label>
            Type
            <select name="type" required>
              {CREDIT_TYPES.map((type) => (
                <option value={type} selected={type === (props.values.type ?? "grant")}>
                  {type}
                </option>
              ))}
            </select>
          </label>
        ) : null}
        <label>
          Amount
          <input name="amount" inputmode="decimal" required maxlength={40} value={props.values.amount ?? ""} pattern="[0-9]+(\.[0-9]+)?" />
        </label>
        <label>
          Description
          <input name="description" maxlength={500} value={props.values.description ?? ""} />
        </label>
        <button type="submit">Review</button>
      </form>
    </Layout>
  );
}
