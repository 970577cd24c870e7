import type { LedgerContext } from "../core/context.js";
import { AUTO_TOPUP_DEFAULTS, evaluateAutoTopup, type AutoTopupPolicy } from "./evaluate.js";

/**
 * Finds the accounts whose auto top-up must be evaluated, without usage doing anything: every process runs a pass
 * every `interval_ms`. A pass walks the enabled rules in pages of `page_rules` (by account id, one bounded
 * statement each) and marks an account due when:
 *   - it has never been evaluated under its rule (evaluated_snapshot is null: new or changed rule), or
 *   - an entry committed that its last evaluation's snapshot did not see: xid at or above the snapshot's xmax, or
 *     xid among the snapshot's in-progress ids. Both are index probes on entries (account_id, xid), so an account
 *     without new entries costs two probes, however old its last evaluation is, or
 *   - its open request has expired (by the ledger clock).
 * Due accounts are evaluated one by one (evaluate.ts). Two processes may find the same account due; the rule row's
 * lock makes one of them evaluate it and the other skip it, and the decision lives in that row, so a crossing is
 * requested once. A pass stops after `pages_max` pages and the next one continues where it stopped.
 */

const PAGE_SQL = `
WITH page AS (
  SELECT account_id, evaluated_snapshot, open_request_expires_at FROM auto_topup_rules
  WHERE enabled AND account_id > $1
  ORDER BY account_id LIMIT $2
)
SELECT page.account_id,
  (page.evaluated_snapshot IS NULL
   OR page.open_request_expires_at <= $3
   OR EXISTS (SELECT 1 FROM entries AS entry
              WHERE entry.account_id = page.account_id AND entry.xid >= pg_snapshot_xmax(page.evaluated_snapshot))
   OR EXISTS (SELECT 1 FROM entries AS entry
              WHERE entry.account_id = page.account_id
                AND entry.xid = ANY (ARRAY(SELECT pg_snapshot_xip(page.evaluated_snapshot))))
  ) AS due
FROM page ORDER BY page.account_id`;

export interface DetectorOptions {
  interval_ms: number;
  /** Rules read per statement. */
  page_rules: number;
  /** Pages per pass; a larger set of rules is covered over several passes. */
  pages_max: number;
  policy: AutoTopupPolicy;
}

export const DETECTOR_DEFAULTS: DetectorOptions = {
  interval_ms: 250,
  page_rules: 1000,
  pages_max: 20,
  policy: AUTO_TOPUP_DEFAULTS,
};

/** A resumable walk over the rules: one pass, from where the previous one stopped. Returns how many it evaluated. */
export class AutoTopupDetector {
  private cursor = "";

  constructor(
    private readonly context: LedgerContext,
    private readonly options: DetectorOptions = DETECTOR_DEFAULTS,
  ) {}

  async pass(): Promise<{ evaluated: number; requested: number }> {
    let evaluated = 0;
    let requested = 0;
    for (let page = 0; page < this.options.pages_max; page++) {
      const rows = await this.context.database.query<{ account_id: string; due: boolean }>(PAGE_SQL, [
        this.cursor,
        this.options.page_rules,
        this.context.now().toISOString(),
      ]);
      for (const row of rows) {
        if (!row.due) continue;
        evaluated++;
        try {
          if (await evaluateAutoTopup(this.context, row.account_id, this.options.policy)) requested++;
        } catch (error) {
          // One account's failure must not hold back the others; it stays due, so the next pass retries it.
          this.context.logger.warn({ err: error, account_id: row.account_id }, "auto top-up evaluation failed");
        }
      }
      if (rows.length < this.options.page_rules) {
        this.cursor = "";
        break;
      }
      this.cursor = rows.at(-1)!.account_id;
    }
    return { evaluated, requested };
  }
}

/** Runs passes every `interval_ms` until stopped; a failed pass is logged and the next one tries again. */
export function startAutoTopupDetector(
  context: LedgerContext,
  options: Partial<DetectorOptions> = {},
): { stop(): Promise<void> } {
  const settings = { ...DETECTOR_DEFAULTS, ...options };
  const detector = new AutoTopupDetector(context, settings);
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> = Promise.resolve();
  const schedule = () => {
    if (stopped) return;
    timer = setTimeout(() => {
      running = detector
        .pass()
        .then(() => undefined)
        .catch((error: unknown) => context.logger.warn({ err: error }, "auto top-up pass failed"))
        .finally(schedule);
    }, settings.interval_ms);
    timer.unref();
  };
  schedule();
  return {
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running;
    },
  };
}
