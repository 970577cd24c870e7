import http from "node:http";
import type { AddressInfo } from "node:net";
import { Webhook } from "standardwebhooks";
import { createAccounts } from "../lib/database.js";
import { CpuMeter } from "../lib/cpu.js";
import { HttpClient } from "../lib/http.js";
import { percentiles } from "../lib/load.js";
import { figure, target } from "../lib/report.js";
import { pick, type Scenario } from "../lib/scenario.js";
import { BENCH_ADMIN_KEY } from "../lib/tally.js";

/**
 * Outbound webhooks (src/webhooks/) to a receiver in the bench process that answers 200 at once.
 *
 * - Latency: sequential balance_depleted events (a read of an empty account), each waited for at the receiver.
 *   "From the event's commit" is bracketed as in notify.ts: receipt − the event's `time` (now() of the evaluation
 *   transaction, which starts before it commits) is an upper bound. Also reported: receipt − the moment the bench
 *   sent the read (the client view, HTTP included).
 * - Throughput: a backlog of events written straight into balance_events in one transaction, drained through the
 *   outbox (fan-out, SKIP LOCKED claims, signing, one connection per attempt, recording each attempt); the rate
 *   runs from the first receipt to the last. Baseline: the bench itself POSTing the same number of bodies, signed
 *   the same way, to the same receiver with the same concurrency (WEBHOOK_IN_FLIGHT_PER_ENDPOINT_MAX) over
 *   keep-alive: the ceiling of receiver and loopback HTTP, with no outbox. Rounds alternate, tally then baseline.
 */

const IN_FLIGHT = 4;
const TIMEOUT_MS = 30_000;
const wallNow = () => performance.timeOrigin + performance.now();

interface Receiver {
  url: string;
  port: number;
  /** Wall-clock receipt by webhook-id, and the accounts seen. */
  receipts: Map<string, { at_wall_ms: number; account_id: string; time_ms: number }>;
  received: number;
  arrived?: () => void;
  close(): Promise<void>;
}

async function startReceiver(secret: () => string | undefined): Promise<Receiver> {
  const receiver: Receiver = { url: "", port: 0, receipts: new Map(), received: 0, close: async () => {} };
  const server = http.createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("end", () => {
      const at_wall_ms = wallNow();
      const body = Buffer.concat(chunks).toString("utf8");
      const id = String(request.headers["webhook-id"]);
      const key = secret();
      // Every hundredth delivery is verified as a receiver would; a bad signature fails the run.
      if (key !== undefined && receiver.received % 100 === 0) new Webhook(key).verify(body, request.headers as Record<string, string>);
      const event = JSON.parse(body) as { data: { account_id: string; time: string } };
      receiver.receipts.set(id, { at_wall_ms, account_id: event.data.account_id, time_ms: Date.parse(event.data.time) });
      receiver.received++;
      response.writeHead(200).end("ok");
      receiver.arrived?.();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  receiver.port = (server.address() as AddressInfo).port;
  receiver.url = `http://127.0.0.1:${receiver.port}/hook`;
  receiver.close = () =>
    new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return receiver;
}

async function waitFor(receiver: Receiver, done: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + TIMEOUT_MS;
  while (!done()) {
    const remaining = deadline - Date.now();
    if (remaining <= 0) throw new Error(`${what}: not received within ${TIMEOUT_MS} ms`);
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, Math.min(remaining, 100));
      receiver.arrived = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    receiver.arrived = undefined;
  }
}

/** The baseline: `count` signed POSTs from this process, `IN_FLIGHT` at a time over keep-alive sockets. */
async function postDirectly(receiver: Receiver, secret: string, count: number, offset: number): Promise<number> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: IN_FLIGHT });
  const signer = new Webhook(secret);
  let next = 0;
  const started = performance.now();
  const worker = async () => {
    for (let index = next++; index < count; index = next++) {
      const id = `baseline-${offset + index}`;
      const body = JSON.stringify({ type: "balance_depleted", timestamp: new Date().toISOString(), data: { id, type: "balance_depleted", account_id: "baseline", balance: "0", time: new Date().toISOString() } });
      const timestamp = new Date();
      await new Promise<void>((resolve, reject) => {
        const request = http.request(
          {
            host: "127.0.0.1",
            port: receiver.port,
            path: "/hook",
            method: "POST",
            agent,
            headers: {
              "content-type": "application/json",
              "content-length": Buffer.byteLength(body),
              "webhook-id": id,
              "webhook-timestamp": String(Math.floor(timestamp.getTime() / 1000)),
              "webhook-signature": signer.sign(id, timestamp, body),
            },
          },
          (response) => {
            response.resume();
            response.on("end", () => (response.statusCode === 200 ? resolve() : reject(new Error(`receiver answered ${response.statusCode}`))));
          },
        );
        request.on("error", reject);
        request.end(body);
      });
    }
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
  agent.destroy();
  return count / ((performance.now() - started) / 1000);
}

export const webhooks: Scenario = {
  name: "webhooks",
  title: "Outbound webhooks: deliveries per second and event commit → receipt",
  async run(context) {
    const sequential = pick(context.quick, 500, 40);
    const backlog = pick(context.quick, 5_000, 400);
    const rounds = pick(context.quick, 3, 1);
    const accounts = await createAccounts(context.sql, "wh_", sequential);
    let secret: string | undefined;
    const receiver = await startReceiver(() => secret);
    const tally = await context.startTally({
      env: { WEBHOOK_ALLOW_PRIVATE_NETWORKS: "true", WEBHOOK_IN_FLIGHT_PER_ENDPOINT_MAX: String(IN_FLIGHT) },
    });
    const admin = new HttpClient(tally.port, BENCH_ADMIN_KEY, 1);
    const http2 = new HttpClient(tally.port, context.key, 1);
    const meter = new CpuMeter(tally.pid);
    let cpu: ReturnType<CpuMeter["read"]> | undefined;
    const upper: number[] = [];
    const fromSend: number[] = [];
    const tallyRates: number[] = [];
    const baselineRates: number[] = [];
    try {
      const endpoint = await admin.json<{ secret: string }>("POST", "/v1/webhook-endpoints", { url: receiver.url, events: ["*"] }, [201]);
      secret = endpoint.secret;

      context.log(`${sequential} sequential events`);
      for (const account of accounts) {
        const sent_wall_ms = wallNow();
        const balance = await http2.json<{ balance: string }>("GET", `/v1/balances/${account}`);
        if (balance.balance !== "0") throw new Error(`${account}: balance ${balance.balance}, expected 0`);
        const seen = () => [...receiver.receipts.values()].find((receipt) => receipt.account_id === account);
        await waitFor(receiver, () => seen() !== undefined, `the event of ${account}`);
        const receipt = seen()!;
        upper.push(receipt.at_wall_ms - receipt.time_ms);
        fromSend.push(receipt.at_wall_ms - sent_wall_ms);
      }

      for (let round = 0; round < rounds; round++) {
        context.log(`round ${round + 1}: a backlog of ${backlog} events`);
        const before = receiver.received;
        const firstIndex = receiver.received;
        await context.sql`
          INSERT INTO balance_events (account_id, type, balance)
          SELECT 'wh_backlog', 'balance_depleted', 0 FROM generate_series(1, ${backlog}::int)`;
        await waitFor(receiver, () => receiver.received >= before + backlog, `backlog round ${round + 1}`);
        const times = [...receiver.receipts.values()].slice(firstIndex).map((receipt) => receipt.at_wall_ms);
        tallyRates.push((backlog - 1) / ((Math.max(...times) - Math.min(...times)) / 1000));
        baselineRates.push(await postDirectly(receiver, secret, backlog, round * backlog));
      }
      cpu = meter.read();
    } finally {
      admin.close();
      http2.close();
      await receiver.close();
    }
    const memory = tally.memory();
    await tally.stop();

    const latency = { upper: percentiles(upper), from_send: percentiles(fromSend) };
    const rate = (rates: number[]) => rates.reduce((sum, value) => sum + value, 0) / rates.length;
    const tallyRate = rate(tallyRates);
    const baselineRate = rate(baselineRates);
    return {
      parameters: { sequential_events: sequential, backlog_events: backlog, rounds, in_flight_per_endpoint: IN_FLIGHT, endpoints: 1 },
      figures: [
        figure("deliveries per second, draining a backlog (vs direct signed POSTs)", "deliveries/s", tallyRate, baselineRate, { better: "higher", headline: true }),
        figure("p50, event transaction start → receipt (upper bound)", "ms", latency.upper.p50, null, { better: "lower" }),
        figure("p99, event transaction start → receipt (upper bound)", "ms", latency.upper.p99, null, { better: "lower", headline: true }),
        figure("p99, read sent → receipt (client view)", "ms", latency.from_send.p99, null, { better: "lower" }),
      ],
      targets: [target("p99 event commit → receipt < 100 ms (upper bound)", `${latency.upper.p99.toFixed(2)} ms`, latency.upper.p99 < 100)],
      details: { latency, tally_rates: tallyRates, baseline_rates: baselineRates, cpu },
      tally_peak_rss_bytes: memory.peak_rss_bytes,
    };
  },
};
