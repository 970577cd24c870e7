import http from "node:http";
import { connectPostgres } from "../../src/db/postgres.js";
import { canonicalAmount } from "../../src/http/schemas.js";
import { createLedgerContext } from "../../src/ledger/core/context.js";
import { postEntry } from "../../src/ledger/posting/posting.js";
import { createLogger } from "../../src/logger.js";

/**
 * The ledger ceiling: tally's own posting path (`postEntry`: the group committer, its grouped INSERT, the
 * known-accounts cache, the checkpoint draw) behind a bare node:http handler, with none of the HTTP framework:
 * no hono, no middleware, no zod, no authentication, `JSON.parse` for the body. Measured beside tally in the same
 * run, what tally spends beyond it is the cost of its request path (routing, middleware, validation, auth,
 * response building), and what it spends itself beyond the HTTP ceiling is the ledger's. Never a place to take
 * shortcuts from: it answers only well-formed posts and trusts its caller.
 *
 * Run as its own process (so its CPU is its own): `ledger-ceiling-server.ts <database url> <pool size>`; prints its
 * port on the first line of stdout.
 */
const [url, poolText] = process.argv.slice(2);
if (!url) throw new Error("usage: ledger-ceiling-server.ts <database url> [pool size]");
const database = connectPostgres({ url, pool_max: Number(poolText ?? 10), statement_timeout_ms: 30_000 });
const ledger = createLedgerContext({ database, logger: createLogger("silent"), refresh_every: 1000, delta_max: 5000 });

const server = http.createServer({ keepAlive: true }, (request, response) => {
  const chunks: Buffer[] = [];
  request.on("data", (chunk: Buffer) => chunks.push(chunk));
  request.on("end", () => {
    const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as {
      account_id: string;
      amount: string;
      idempotency_key: string;
      metadata?: Record<string, unknown>;
    };
    postEntry(ledger, {
      account_id: body.account_id,
      type: "usage",
      amount: canonicalAmount(body.amount),
      idempotency_key: body.idempotency_key,
      batch_id: null,
      description: null,
      metadata: body.metadata ?? null,
    }).then(
      (result) => {
        const text = JSON.stringify(result.entry);
        response
          .writeHead(result.replayed ? 200 : 201, { "content-type": "application/json", "content-length": Buffer.byteLength(text) })
          .end(text);
      },
      (error: unknown) => {
        const text = JSON.stringify({ title: String(error) });
        response.writeHead(500, { "content-type": "application/json", "content-length": Buffer.byteLength(text) }).end(text);
      },
    );
  });
});
server.keepAliveTimeout = 60_000;
server.listen(0, "127.0.0.1", () => {
  const address = server.address();
  process.stdout.write(`${typeof address === "object" && address ? address.port : 0}\n`);
});
const stop = () => {
  server.close(() => void database.close().then(() => process.exit(0)));
  server.closeAllConnections();
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
