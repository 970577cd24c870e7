import { parseArgs } from "node:util";
import { usageError, wantsHelp } from "./usage.js";

const PAGE_MAX = 1000;

const USAGE = `usage: tally renewals [--dry-run] [--plan <plan id>] [--account <account id>]... [--limit <n>]
Renews the plan subscriptions that are due now, as the scheduler inside every tally process does, in pages of up to
${PAGE_MAX}, continuing past failures; prints a progress bar on stderr and a summary on stdout, and exits 1 if any renewal
failed (each failure is named). With --dry-run, lists what would be granted (account, plan, period, amount, rollover)
and writes nothing (the first page: up to ${PAGE_MAX}). Safe beside running servers: every period is granted exactly once whoever renews it.
Uses DATABASE_URL, or the embedded store under DATA_DIR (which a running tally holds locked).`;

export async function run(args: string[]): Promise<void> {
  wantsHelp(args, USAGE);
  let values;
  try {
    ({ values } = parseArgs({
      args,
      options: {
        "dry-run": { type: "boolean", default: false },
        plan: { type: "string" },
        account: { type: "string", multiple: true },
        limit: { type: "string" },
      },
    }));
  } catch (error) {
    usageError(USAGE, error instanceof Error ? error.message : String(error));
  }
  const limit = values.limit === undefined ? undefined : Number(values.limit);
  if (limit !== undefined && (!Number.isInteger(limit) || limit < 1)) usageError(USAGE, "--limit must be a whole number of at least 1");
  const dry_run = values["dry-run"] ?? false;
  const account_ids = values.account;
  if (account_ids !== undefined && account_ids.length > PAGE_MAX) usageError(USAGE, `at most ${PAGE_MAX} --account options`);

  // Loaded only now, so --help and argument errors answer without loading the database drivers.
  const [{ parseConfig }, { openDatabase }, { createLedgerContext }, { createLogger }, { runRenewals, dueAccounts }, { progressBar }] =
    await Promise.all([
      import("../../config.js"),
      import("../../db/open.js"),
      import("../../ledger/core/context.js"),
      import("../../logger.js"),
      import("../../ledger/plans/run.js"),
      import("./progress.js"),
    ]);
  const config = parseConfig(process.env);
  const database = await openDatabase(config, { migrate: false });
  // Warnings (a failed renewal) go to stderr with the bar; stdout carries only the listing and the summary.
  const logger = createLogger("silent");
  const ledger = createLedgerContext({
    database,
    logger,
    refresh_every: config.CHECKPOINT_REFRESH_EVERY,
    delta_max: config.CHECKPOINT_DELTA_MAX,
  });
  const filters = { plan_id: values.plan, account_ids };
  const totals = { processed: 0, granted: 0, skipped: 0, failed: 0 };
  try {
    const wanted = limit ?? Number.MAX_SAFE_INTEGER;
    // The bar's total: what is due now, up to the limit (counted in pages, as bounded as the run itself).
    const total = Math.min(wanted, (await dueAccounts(ledger, { ...filters, dry_run, limit: Math.min(wanted, PAGE_MAX) }, ledger.clock.now())).length);
    const draw = () => process.stderr.isTTY && process.stderr.write(`\r${progressBar(totals.processed, Math.max(total, totals.processed), "subscriptions")}`);
    for (;;) {
      const page = await runRenewals(ledger, { ...filters, dry_run, limit: Math.min(PAGE_MAX, wanted - totals.processed) });
      totals.processed += page.processed;
      totals.granted += page.granted;
      totals.skipped += page.skipped;
      totals.failed += page.failed;
      for (const renewal of page.renewals) {
        process.stdout.write(
          `${dry_run ? "WOULD GRANT" : "GRANTED"} ${renewal.account_id} plan ${renewal.plan_id} ${renewal.period_start} to ${renewal.period_end}: ` +
            `${renewal.amount} (${renewal.credits} + rollover ${renewal.rollover})\n`,
        );
      }
      for (const error of page.errors) process.stdout.write(`FAILED ${error.account_id}: ${error.code}: ${error.detail}\n`);
      draw();
      // A dry run changes nothing, so a second page would list the same subscriptions again. A real run stops when
      // a page moved nothing out of the due set (only failures are left, retried by the scheduler later).
      if (dry_run || page.processed === 0 || page.granted + page.skipped === 0 || totals.processed >= wanted) break;
    }
    if (process.stderr.isTTY) process.stderr.write("\n");
  } finally {
    await database.close();
  }
  process.stdout.write(
    `${dry_run ? "dry run: " : ""}processed ${totals.processed}, ${dry_run ? "would grant" : "granted"} ${totals.granted}, ` +
      `skipped ${totals.skipped}, failed ${totals.failed}\n`,
  );
  if (totals.failed > 0) process.exitCode = 1;
}
