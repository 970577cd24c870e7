/**
 * A tally process that dies between the two legs of a transfer: it posts one transfer through the ledger, and in
 * the transaction, after the source leg is written, prints `between <backend pid>` and waits to be killed. The
 * parent test SIGKILLs it there. Arguments: database URL, from, to, amount, idempotency key.
 */
import { connectPostgres } from "../../src/db/postgres.js";
import { createLedgerContext } from "../../src/ledger/core/context.js";
import { postTransfer } from "../../src/ledger/corrections/transfers.js";
import { createLogger } from "../../src/logger.js";

const [url, from, to, amount, key] = process.argv.slice(2) as [string, string, string, string, string];
const database = connectPostgres({ url, pool_max: 2, statement_timeout_ms: 60_000 });
const ledger = createLedgerContext({ database, logger: createLogger("silent"), refresh_every: 1000, delta_max: 5000 });
await postTransfer(
  ledger,
  { from_account_id: from, to_account_id: to, amount, idempotency_key: key, description: null, metadata: null, allow_overdraft: false },
  {
    between_legs: async (transaction) => {
      const [row] = await transaction.query<{ pid: number }>("SELECT pg_backend_pid() AS pid");
      process.stdout.write(`between ${row!.pid}\n`);
      await new Promise(() => {}); // until killed
    },
  },
);
process.stdout.write("committed\n");
