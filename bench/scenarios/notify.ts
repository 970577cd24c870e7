import { connect, createAccounts } from "../lib/database.js";
import { CpuMeter } from "../lib/cpu.js";
import { HttpClient, openEventStream } from "../lib/http.js";
import { percentiles } from "../lib/load.js";
import { figure, target } from "../lib/report.js";
import { pick, type Scenario } from "../lib/scenario.js";

/**
 * How soon a gateway hears that a balance was restored: 1,000 sequential zero crossings on one account, each
 * received on LISTEN (the NOTIFY channel, from a postgres.js connection in the bench process) and on the SSE
 * stream (GET /v1/events, over HTTP from the same process). Each crossing: usage takes the balance to −1, a read
 * of the balance registers the observation (the account is now watched as depleted), then a credit of 2 restores it.
 *
 * "From the credit's commit" cannot be timed directly without track_commit_timestamp (off, and the server config
 * is not ours to change), so the latency is bracketed between two bounds measured on one clock (PostgreSQL and
 * the bench run on the same host, so now() and the bench's wall clock agree to well under a millisecond; the
 * timestamps in the API are truncated to milliseconds, so both bounds read up to 1 ms high, which keeps the upper
 * bound conservative):
 *
 * - upper bound: receipt − the credit entry's created_at. created_at is now() of the credit's INSERT
 *   transaction, which starts before it commits, so this includes the insert itself.
 * - lower bound: receipt − the event's time. That is now() of the crossing evaluation, which begins after the
 *   credit has committed, so this leaves out the gap between the credit's commit and the evaluation's start.
 *
 * Also reported: receipt − the moment the bench sent the credit (everything, HTTP included). The target is judged
 * on the upper bound.
 */

const ACCOUNT = "notify_1";
const CHANNEL = "tally_balance_restored";
const TIMEOUT_MS = 5_000;

interface Receipt {
  at_wall_ms: number;
  event_time_ms: number;
}

const wallNow = () => performance.timeOrigin + performance.now();

export const notify: Scenario = {
  name: "notify",
  title: "Credit commit → balance_restored on LISTEN and SSE, over 1,000 crossings",
  async run(context) {
    const crossings = pick(context.quick, 1_000, 50);
    await createAccounts(context.sql, "notify_", 1);
    const tally = await context.startTally();
    const http = new HttpClient(tally.port, context.key, 2);

    // Receipts by event id, from each channel; `arrived` wakes the crossing waiting for them.
    const listenReceipts = new Map<string, Receipt>();
    const sseReceipts = new Map<string, Receipt>();
    let arrived: (() => void) | undefined;
    const listener = connect(context.database_url, 1);
    await listener.listen(CHANNEL, (payload) => {
      const at_wall_ms = wallNow();
      const event = JSON.parse(payload) as { id: string; type: string; account_id: string; time: string };
      if (event.account_id !== ACCOUNT || event.type !== "balance_restored") return;
      listenReceipts.set(event.id, { at_wall_ms, event_time_ms: Date.parse(event.time) });
      arrived?.();
    });
    const stream = await openEventStream(tally.port, context.key, "/v1/events", (message, received_at) => {
      if (message.event !== "balance_restored") return;
      const event = JSON.parse(message.data) as { id: string; account_id: string; time: string };
      if (event.account_id !== ACCOUNT) return;
      sseReceipts.set(event.id, { at_wall_ms: performance.timeOrigin + received_at, event_time_ms: Date.parse(event.time) });
      arrived?.();
    });

    const upper = { listen: [] as number[], sse: [] as number[] };
    const lower = { listen: [] as number[], sse: [] as number[] };
    const fromSend = { listen: [] as number[], sse: [] as number[] };
    // Crossings are sequential, so a crossing's event is the first one with an id above the previous crossing's.
    let lastId = 0n;
    const newReceipt = (receipts: Map<string, Receipt>) => {
      let next: bigint | undefined;
      for (const id of receipts.keys()) if (BigInt(id) > lastId && (next === undefined || BigInt(id) < next)) next = BigInt(id);
      return next?.toString();
    };

    context.log(`${crossings} crossings`);
    const meter = new CpuMeter(tally.pid);
    let cpu: ReturnType<CpuMeter["read"]> | undefined;
    try {
      for (let crossing = 0; crossing < crossings; crossing++) {
        await http.json("POST", "/v1/usage", { account_id: ACCOUNT, amount: crossing === 0 ? "1" : "2", idempotency_key: `u-${crossing}` }, [201]);
        const observed = await http.json<{ balance: string }>("GET", `/v1/balances/${ACCOUNT}`);
        if (observed.balance !== "-1") throw new Error(`crossing ${crossing}: the balance is ${observed.balance}, expected -1`);

        const sent_wall_ms = wallNow();
        const credit = await http.json<{ created_at: string }>(
          "POST",
          "/v1/credits",
          { account_id: ACCOUNT, type: "grant", amount: "2", idempotency_key: `c-${crossing}` },
          [201],
        );
        const credit_ms = Date.parse(credit.created_at);
        const deadline = Date.now() + TIMEOUT_MS;
        let listenId: string | undefined;
        let sseId: string | undefined;
        for (;;) {
          listenId ??= newReceipt(listenReceipts);
          sseId ??= newReceipt(sseReceipts);
          if (listenId && sseId) break;
          const remaining = deadline - Date.now();
          if (remaining <= 0) {
            throw new Error(`crossing ${crossing}: balance_restored not received within ${TIMEOUT_MS} ms on ${listenId ? "" : "LISTEN "}${sseId ? "" : "SSE"}`);
          }
          await new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, remaining);
            arrived = () => {
              clearTimeout(timer);
              resolve();
            };
          });
          arrived = undefined;
        }
        if (listenId !== sseId) throw new Error(`crossing ${crossing}: LISTEN delivered event ${listenId}, SSE ${sseId}`);
        lastId = BigInt(listenId);
        for (const [channel, receipt] of [["listen", listenReceipts.get(listenId)!], ["sse", sseReceipts.get(sseId)!]] as const) {
          upper[channel].push(receipt.at_wall_ms - credit_ms);
          lower[channel].push(receipt.at_wall_ms - receipt.event_time_ms);
          fromSend[channel].push(receipt.at_wall_ms - sent_wall_ms);
        }
      }
      cpu = meter.read();
    } finally {
      stream.close();
      await listener.end({ timeout: 5 });
      http.close();
    }
    const memory = tally.memory();
    await tally.stop();

    const stats = {
      listen: { upper: percentiles(upper.listen), lower: percentiles(lower.listen), from_send: percentiles(fromSend.listen) },
      sse: { upper: percentiles(upper.sse), lower: percentiles(lower.sse), from_send: percentiles(fromSend.sse) },
    };
    const figures = (["listen", "sse"] as const).flatMap((channel) => {
      const name = channel === "listen" ? "LISTEN" : "SSE";
      return [
        figure(`${name} p50, credit transaction start → receipt (upper bound)`, "ms", stats[channel].upper.p50, null, { better: "lower" }),
        figure(`${name} p99, credit transaction start → receipt (upper bound)`, "ms", stats[channel].upper.p99, null, { better: "lower", headline: true }),
        figure(`${name} p99, evaluation start → receipt (lower bound)`, "ms", stats[channel].lower.p99, null, { better: "lower" }),
        figure(`${name} p99, credit sent → receipt (client view)`, "ms", stats[channel].from_send.p99, null, { better: "lower" }),
      ];
    });
    return {
      parameters: { crossings, account: ACCOUNT, channel: CHANNEL, sequential: true, timestamp_resolution_ms: 1 },
      figures,
      targets: [
        target("LISTEN p99 < 50 ms (upper bound)", `${stats.listen.upper.p99.toFixed(2)} ms`, stats.listen.upper.p99 < 50),
        target("SSE p99 < 50 ms (upper bound)", `${stats.sse.upper.p99.toFixed(2)} ms`, stats.sse.upper.p99 < 50),
      ],
      // The design allows a rare duplicate balance_restored (never a missed one); none is expected here.
      details: { ...stats, cpu, restored_events_received: { listen: listenReceipts.size, sse: sseReceipts.size } },
      tally_peak_rss_bytes: memory.peak_rss_bytes,
    };
  },
};
