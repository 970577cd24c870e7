import { parseConfig } from "../../config.js";
import { openDatabase } from "../../db/open.js";
import { CHECKPOINT_BALANCE, CHECKPOINT_JOINS } from "../../ledger/balances/balance-sql.js";
import { canonicalNumeric } from "../../ledger/core/amount.js";
import { progressBar } from "./progress.js";
import { wantsHelp } from "./usage.js";

const USAGE = `usage: tally verify
Recomputes every account's balance as the plain sum of its entries and compares it with the balance the API serves
(checkpoint + delta), both read in one statement per chunk of ${500} accounts, so concurrent writes cannot make them
differ. Prints a progress bar on stderr and every difference on stdout; exits 1 if there is any.`;

const CHUNK_ACCOUNTS = 500;

/** Both balances of a chunk of accounts after `after_id`, in one statement (one snapshot). */
const CHUNK_SQL = `
SELECT account_id, served::text, recomputed::text, served <> recomputed AS differs
FROM (
  SELECT requested.account_id,
         ${CHECKPOINT_BALANCE} AS served,
         (SELECT COALESCE(SUM(all_rows.delta), 0) FROM entries AS all_rows WHERE all_rows.account_id = requested.account_id) AS recomputed
  FROM (SELECT id AS account_id FROM accounts WHERE id > $1 ORDER BY id LIMIT ${CHUNK_ACCOUNTS}) AS requested
  ${CHECKPOINT_JOINS}
) AS balances
ORDER BY account_id`;

const bar = (done: number, total: number) => progressBar(done, total, "accounts");

export async function run(args: string[]): Promise<void> {
  wantsHelp(args, USAGE);
  const config = parseConfig(process.env);
  const database = await openDatabase(config, { migrate: false, on_progress: (message) => process.stderr.write(`${message}\n`) });
  let differences = 0;
  let checked = 0;
  try {
    const [count] = await database.query<{ count: string }>("SELECT count(*)::text AS count FROM accounts");
    const total = Number(count?.count ?? 0);
    let after = "";
    for (;;) {
      const rows = await database.query<{ account_id: string; served: string; recomputed: string; differs: boolean }>(CHUNK_SQL, [after]);
      if (rows.length === 0) break;
      for (const row of rows) {
        // Compared as NUMERIC in the statement: exact, whatever the scale of either text.
        if (row.differs) {
          differences++;
          process.stdout.write(`DIFFERENT ${row.account_id}: served ${canonicalNumeric(row.served)}, entries sum to ${canonicalNumeric(row.recomputed)}\n`);
        }
      }
      checked += rows.length;
      after = rows.at(-1)!.account_id;
      if (process.stderr.isTTY) process.stderr.write(`\r${bar(checked, total)}`);
    }
    process.stderr.write(`${process.stderr.isTTY ? "\r" : ""}${bar(checked, Math.max(total, checked))}\n`);
  } finally {
    await database.close();
  }
  process.stdout.write(differences === 0 ? `all ${checked} balances match their entries\n` : `${differences} of ${checked} balances differ\n`);
  if (differences > 0) process.exitCode = 1;
}
