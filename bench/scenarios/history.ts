import { createAccounts } from "../lib/database.js";
import { fillEntries } from "../lib/fill.js";
import { CpuMeter } from "../lib/cpu.js";
import { HttpClient } from "../lib/http.js";
import { percentiles, sequentialLatencies } from "../lib/load.js";
import { figure, target } from "../lib/report.js";
import { pick, type Scenario } from "../lib/scenario.js";

/**
 * Grouped history: the first page and page 100 of `GET /v1/accounts/{id}/entries` (batches rolled up into one
 * row each) for an account with 1,000,000 entries in 10,000 batches, against the naive query a ledger without a
 * roll-up runs for every page: GROUP BY over the account's whole history, ORDER BY, LIMIT/OFFSET.
 *
 * The history API is built separately from this suite, so the scenario reads the route's query parameters from
 * /openapi.json rather than assuming them (page size, cursor or offset, and a grouping switch if there is one). If
 * the route does not exist yet (404 `not_found`), the scenario is reported as skipped, not failed.
 */

const PAGE_SIZE = 50;
const TARGET_PAGE = 100;
const ACCOUNT = "hist_1";
/** Never read before its first page: every fold (roll-up, first checkpoint) happens during that request. */
const UNREAD_ACCOUNT = "hist_2";
/** Pages walked by cursor after the unread account's first page. */
const UNREAD_LATER_PAGES = 20;

interface QueryParameter {
  name: string;
  schema?: { type?: string; enum?: unknown[]; default?: unknown };
}

interface Route {
  path: string;
  parameters: QueryParameter[];
}

/** The entries route and its query parameters, as the running tally documents them. */
async function discoverRoute(http: HttpClient): Promise<Route | undefined> {
  const document = await http.json<{ paths: Record<string, { get?: { parameters?: (QueryParameter & { in: string })[] } }> }>("GET", "/openapi.json");
  const path = Object.keys(document.paths).find((candidate) => /^\/v1\/accounts\/\{[^}]+\}\/entries$/.test(candidate));
  if (!path) return undefined;
  return { path, parameters: (document.paths[path]!.get?.parameters ?? []).filter((parameter) => parameter.in === "query") };
}

/** Query parameters that ask for page size and for batches grouped, by whatever names the route uses. */
function baseQuery(route: Route): URLSearchParams {
  const query = new URLSearchParams();
  const names = route.parameters.map((parameter) => parameter.name);
  const size = names.find((name) => name === "limit" || name === "page_size" || name === "per_page");
  if (size) query.set(size, String(PAGE_SIZE));
  const group = route.parameters.find((parameter) => /group/i.test(parameter.name));
  if (group) {
    const options = group.schema?.enum ?? [];
    if (options.includes("batch")) query.set(group.name, "batch");
    else if (options.includes("batch_id")) query.set(group.name, "batch_id");
    else if (group.schema?.type === "boolean" || options.includes("true")) query.set(group.name, "true");
  }
  return query;
}

function itemsOf(body: Record<string, unknown>): unknown[] {
  const array = Object.values(body).find((value) => Array.isArray(value));
  if (!array) throw new Error(`the history response has no list: ${JSON.stringify(body).slice(0, 300)}`);
  return array as unknown[];
}

function idsOf(items: unknown[]): string[] {
  return items.map((item) => String((item as { batch_id?: unknown; id?: unknown }).batch_id ?? (item as { id?: unknown }).id));
}

function cursorOf(body: Record<string, unknown>): string | undefined {
  const entry = Object.entries(body).find(([key, value]) => /cursor/i.test(key) && typeof value === "string");
  return entry?.[1] as string | undefined;
}

const NAIVE_SQL = `
SELECT COALESCE(batch_id::text, id::text) AS group_id, MIN(type) AS type, SUM(amount)::text AS amount,
       COUNT(*)::int AS entries, MAX(created_at) AS created_at
FROM entries
WHERE account_id = $1
GROUP BY COALESCE(batch_id::text, id::text)
ORDER BY MAX(seq) DESC
LIMIT $2 OFFSET $3`;

export const history: Scenario = {
  name: "history",
  title: "Grouped history, first page and page 100, 1,000,000 entries in 10,000 batches, vs naive GROUP BY",
  async run(context) {
    const rows = pick(context.quick, 1_000_000, 20_000);
    const batches = pick(context.quick, 10_000, 5_000);
    const duration_ms = pick(context.quick, 5_000, 500);
    await createAccounts(context.sql, "hist_", 2);
    const tally = await context.startTally();
    const http = new HttpClient(tally.port, context.key, 1);

    const probe = await http.request("GET", `/v1/accounts/${ACCOUNT}/entries`);
    const probeCode = (() => {
      try {
        return (JSON.parse(probe.body) as { code?: string }).code;
      } catch {
        return undefined;
      }
    })();
    const route = probe.status === 404 && probeCode === "not_found" ? undefined : await discoverRoute(http);
    if (!route) {
      http.close();
      const memory = tally.memory();
      await tally.stop();
      return {
        status: "skipped",
        skipped_reason: "history endpoint not available (GET /v1/accounts/{id}/entries answered 404 not_found)",
        parameters: { rows, batches, page_size: PAGE_SIZE, page: TARGET_PAGE },
        figures: [],
        targets: [],
        tally_peak_rss_bytes: memory.peak_rss_bytes,
      };
    }

    context.log(`filling ${rows.toLocaleString("en-US")} entries in ${batches.toLocaleString("en-US")} batches`);
    const fill = await fillEntries(context.sql, { account_id: ACCOUNT, rows, batches });
    context.log(`filled in ${fill.insert_seconds.toFixed(1)} s`);

    const query = baseQuery(route);
    const pathFor = (extra: Record<string, string>, account = ACCOUNT) => {
      const parameters = new URLSearchParams(query);
      for (const [name, value] of Object.entries(extra)) parameters.set(name, value);
      return `/v1/accounts/${account}/entries?${parameters.toString()}`;
    };
    const names = route.parameters.map((parameter) => parameter.name);
    const firstPath = pathFor({});
    // The first read after a bulk fill is cold: whatever the route defers (a roll-up of the new rows, say) happens now.
    const coldStarted = performance.now();
    const first = await http.json<Record<string, unknown>>("GET", firstPath);
    const cold_ms = performance.now() - coldStarted;
    const firstItems = itemsOf(first);
    // Wrong answers are collected rather than thrown, so the latencies are still measured and reported; any of them
    // fails the run at the end.
    const problems: string[] = [];
    if (firstItems.length !== PAGE_SIZE) problems.push(`the first page has ${firstItems.length} items, expected ${PAGE_SIZE}`);

    // Page 100 by cursor (walking 99 pages, as a client does) if the route pages by cursor; by offset or page number
    // otherwise. If it offers both cursor and offset, page 100 by offset is measured too.
    let pagePath: string;
    let paging: string;
    const offsetPath = names.includes("offset") ? pathFor({ offset: String((TARGET_PAGE - 1) * PAGE_SIZE) }) : undefined;
    if (names.includes("cursor")) {
      paging = "cursor";
      let cursor = cursorOf(first);
      const seen = new Set(idsOf(firstItems));
      for (let page = 2; page < TARGET_PAGE; page++) {
        if (!cursor) throw new Error(`history ran out of pages at page ${page}`);
        const body = await http.json<Record<string, unknown>>("GET", pathFor({ cursor }));
        for (const id of idsOf(itemsOf(body))) {
          if (seen.has(id)) problems.push(`history listed item ${id} twice (again on page ${page})`);
          seen.add(id);
        }
        cursor = cursorOf(body);
      }
      if (!cursor) throw new Error(`history has no page ${TARGET_PAGE}`);
      pagePath = pathFor({ cursor });
    } else if (offsetPath) {
      paging = "offset";
      pagePath = offsetPath;
    } else if (names.includes("page")) {
      paging = "page";
      pagePath = pathFor({ page: String(TARGET_PAGE) });
    } else {
      throw new Error(`cannot tell how ${route.path} pages: query parameters ${names.join(", ")}`);
    }
    const pageItems = itemsOf(await http.json<Record<string, unknown>>("GET", pagePath));
    if (pageItems.length !== PAGE_SIZE) problems.push(`page ${TARGET_PAGE} has ${pageItems.length} items, expected ${PAGE_SIZE}`);
    const offsetItems = offsetPath && paging === "cursor" ? itemsOf(await http.json<Record<string, unknown>>("GET", offsetPath)) : undefined;
    if (offsetItems && JSON.stringify(offsetItems) !== JSON.stringify(pageItems)) {
      problems.push(`page ${TARGET_PAGE} by offset differs from page ${TARGET_PAGE} by cursor`);
    }

    const measureTally = async (path: string) => {
      for (let warm = 0; warm < 20; warm++) await http.expect("GET", path, undefined, [200]);
      const meter = new CpuMeter(tally.pid);
      const latencies = await sequentialLatencies(async () => void (await http.expect("GET", path, undefined, [200])), { count_max: 20_000, duration_ms });
      return { ...percentiles(latencies), cpu: meter.read() };
    };
    // The naive query is also the reference: tally's page must list the same groups in the same order.
    const measureNaive = async (offset: number, tallyItems: unknown[]) => {
      const run = () => context.sql.unsafe<{ group_id: string }[]>(NAIVE_SQL, [ACCOUNT, PAGE_SIZE, offset], { prepare: true });
      const reference = (await run()).map((row) => row.group_id);
      const listed = idsOf(tallyItems);
      if (JSON.stringify(reference) !== JSON.stringify(listed)) {
        const index = reference.findIndex((id, position) => listed[position] !== id);
        problems.push(
          `the page at offset ${offset} differs from GROUP BY … ORDER BY MAX(seq) DESC from item ${index}: tally lists ${listed[index]}, expected ${reference[index]}`,
        );
      }
      // No CPU split: GROUP BY over a million rows runs as a parallel query, whose workers exit before they can be measured.
      return percentiles(await sequentialLatencies(async () => void (await run()), { count_max: 20_000, duration_ms, count_min: 10 }));
    };
    context.log("first page");
    const tallyFirst = await measureTally(firstPath);
    const naiveFirst = await measureNaive(0, firstItems);
    context.log(`page ${TARGET_PAGE}`);
    const tallyPage = await measureTally(pagePath);
    const naivePage = await measureNaive((TARGET_PAGE - 1) * PAGE_SIZE, pageItems);
    const tallyOffset = offsetItems && offsetPath ? await measureTally(offsetPath) : undefined;

    // A never-read account of 3,000,000 rows, posted as tally would have received it (transactions of at most
    // 10,000 rows): its first page rolls up every batch and builds the first checkpoint, in bounded chunks.
    const unreadRows = pick(context.quick, 3_000_000, 60_000);
    const unreadBatches = unreadRows / 100;
    context.log(`filling ${unreadRows.toLocaleString("en-US")} entries in ${unreadBatches.toLocaleString("en-US")} batches, never read`);
    const unreadFill = await fillEntries(context.sql, { account_id: UNREAD_ACCOUNT, rows: unreadRows, batches: unreadBatches, transaction_rows: 10_000 });
    context.log(`filled in ${unreadFill.insert_seconds.toFixed(1)} s; first page of the never-read account`);
    // A request that outlasts REQUEST_TIMEOUT_MS answers 504 but keeps the chunks it committed; a client retries, and
    // the retry continues the folds. The figure is the time until the first 200, across attempts.
    const unreadStarted = performance.now();
    let unreadAttempts = 0;
    let unreadResponse: { status: number; body: string };
    do {
      unreadAttempts++;
      unreadResponse = await http.request("GET", pathFor({}, UNREAD_ACCOUNT));
    } while (unreadResponse.status === 504 && unreadAttempts < 20);
    if (unreadResponse.status !== 200) throw new Error(`the never-read account's first page answered ${unreadResponse.status}: ${unreadResponse.body.slice(0, 300)}`);
    const unreadFirst = JSON.parse(unreadResponse.body) as Record<string, unknown>;
    const unread_first_ms = performance.now() - unreadStarted;
    context.log(`first page of the never-read account: ${unread_first_ms.toFixed(0)} ms in ${unreadAttempts} request(s)`);
    const unreadLater: number[] = [];
    let unreadCursor = cursorOf(unreadFirst);
    const unreadSeen = new Set(idsOf(itemsOf(unreadFirst)));
    for (let page = 2; page <= UNREAD_LATER_PAGES + 1 && unreadCursor && paging === "cursor"; page++) {
      const started = performance.now();
      const body = await http.json<Record<string, unknown>>("GET", pathFor({ cursor: unreadCursor }, UNREAD_ACCOUNT));
      unreadLater.push(performance.now() - started);
      for (const id of idsOf(itemsOf(body))) {
        if (unreadSeen.has(id)) problems.push(`the never-read account listed item ${id} twice (again on page ${page})`);
        unreadSeen.add(id);
      }
      unreadCursor = cursorOf(body);
    }
    const unreadLaterPercentiles = unreadLater.length > 0 ? percentiles(unreadLater) : undefined;
    // The same first page without any fold: GROUP BY over the whole history, once (it takes seconds).
    const naiveUnreadStarted = performance.now();
    const naiveUnread = await context.sql.unsafe<{ group_id: string }[]>(NAIVE_SQL, [UNREAD_ACCOUNT, PAGE_SIZE, 0], { prepare: true });
    const naive_unread_ms = performance.now() - naiveUnreadStarted;
    if (JSON.stringify(naiveUnread.map((row) => row.group_id)) !== JSON.stringify(idsOf(itemsOf(unreadFirst)))) {
      problems.push("the never-read account's first page differs from GROUP BY … ORDER BY MAX(seq) DESC");
    }
    http.close();
    const memory = tally.memory();
    await tally.stop();

    return {
      parameters: { rows, batches, unread_rows: unreadRows, unread_batches: unreadBatches, rows_per_batch: rows / batches, page_size: PAGE_SIZE, page: TARGET_PAGE, paging, route: route.path, query: query.toString(), duration_ms_per_measurement: duration_ms, clients: 1 },
      figures: [
        figure("p50, first page", "ms", tallyFirst.p50, naiveFirst.p50, { better: "lower" }),
        figure("p99, first page", "ms", tallyFirst.p99, naiveFirst.p99, { better: "lower", headline: true }),
        figure(`p50, page ${TARGET_PAGE}`, "ms", tallyPage.p50, naivePage.p50, { better: "lower" }),
        figure(`p99, page ${TARGET_PAGE}`, "ms", tallyPage.p99, naivePage.p99, { better: "lower", headline: true }),
        ...(tallyOffset ? [figure(`p99, page ${TARGET_PAGE} by offset`, "ms", tallyOffset.p99, naivePage.p99, { better: "lower" })] : []),
        figure("first (cold) read after the fill", "ms", cold_ms, null, { better: "lower" }),
        figure(`first page, never-read account of ${unreadRows.toLocaleString("en-US")} rows (${unreadAttempts} request(s); baseline: one naive GROUP BY)`, "ms", unread_first_ms, naive_unread_ms, { better: "lower", headline: true }),
        ...(unreadLaterPercentiles
          ? [figure(`p99, pages 2–${UNREAD_LATER_PAGES + 1} of that account by cursor`, "ms", unreadLaterPercentiles.p99, null, { better: "lower" })]
          : []),
      ],
      targets: [
        target("p99 of the first page < 25 ms", `${tallyFirst.p99.toFixed(2)} ms`, tallyFirst.p99 < 25),
        target(`p99 of page ${TARGET_PAGE} < 25 ms`, `${tallyPage.p99.toFixed(2)} ms`, tallyPage.p99 < 25),
        target(`first page of a never-read account of ${unreadRows.toLocaleString("en-US")} rows < 2 s`, `${unread_first_ms.toFixed(0)} ms`, unread_first_ms < 2_000),
      ],
      fills: [fill, unreadFill],
      details: { unread_account: { rows: unreadRows, batches: unreadBatches, first_page_ms: unread_first_ms, first_page_attempts: unreadAttempts, later_pages_ms: unreadLater, later_pages: unreadLaterPercentiles, naive_first_page_ms: naive_unread_ms }, cold_first_page_ms: cold_ms, tally_first: tallyFirst, naive_first: naiveFirst, tally_page: tallyPage, naive_page: naivePage, tally_page_by_offset: tallyOffset },
      tally_peak_rss_bytes: memory.peak_rss_bytes,
      ...(problems.length > 0
        ? { failure: `wrong history pages: ${problems.slice(0, 5).join("; ")}${problems.length > 5 ? `; and ${problems.length - 5} more` : ""}` }
        : {}),
    };
  },
};
