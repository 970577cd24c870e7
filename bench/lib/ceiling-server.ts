import { randomUUID } from "node:crypto";
import http from "node:http";

/**
 * The HTTP ceiling: a node:http server with no database that answers `POST /v1/usage` the way tally does on
 * success (it reads and parses the body, checks there is a bearer token, answers 201 with an entry of the same
 * shape), and nothing else. Measured in the same run as tally, it is the most any HTTP server in Node can do on
 * this machine with this load generator: what tally spends beyond it is tally's own cost.
 *
 * Run as its own process (so its CPU is its own); prints its port on the first line of stdout.
 */
const server = http.createServer({ keepAlive: true }, (request, response) => {
  const chunks: Buffer[] = [];
  request.on("data", (chunk: Buffer) => chunks.push(chunk));
  request.on("end", () => {
    if (request.method !== "POST" || !request.headers.authorization?.startsWith("Bearer ")) {
      response.writeHead(401).end();
      return;
    }
    const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as { account_id: string; amount: string; idempotency_key: string; metadata?: unknown };
    const entry = {
      id: randomUUID(),
      account_id: body.account_id,
      type: "usage",
      amount: body.amount,
      delta: `-${body.amount}`,
      idempotency_key: body.idempotency_key,
      batch_id: null,
      description: null,
      metadata: body.metadata ?? null,
      created_at: new Date().toISOString(),
    };
    const text = JSON.stringify(entry);
    response.writeHead(201, { "content-type": "application/json", "content-length": Buffer.byteLength(text) }).end(text);
  });
});
server.keepAliveTimeout = 60_000;
server.listen(0, "127.0.0.1", () => {
  const address = server.address();
  process.stdout.write(`${typeof address === "object" && address ? address.port : 0}\n`);
});
process.on("SIGTERM", () => server.close(() => process.exit(0)));
