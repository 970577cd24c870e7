import type postgres from "postgres";

/**
 * What the scratch database's backends are doing, sampled from pg_stat_activity every `interval_ms` during a
 * measurement: for each active backend its wait event (`LWLock:WALWrite`, `Lock:transactionid`, …) or `CPU` when it
 * waits on nothing, plus how many connections sat idle waiting for their client. The shares say whether a figure is
 * limited by the database (lock or WAL waits) or by whoever feeds it (idle connections).
 */
export class WaitSampler {
  private timer: NodeJS.Timeout | undefined;
  private samples = 0;
  private readonly counts = new Map<string, number>();
  private idle = 0;
  private busy = 0;
  private pending: Promise<void> = Promise.resolve();

  constructor(
    private readonly sql: postgres.Sql,
    private readonly interval_ms = 50,
  ) {}

  start(): void {
    this.timer = setInterval(() => {
      this.pending = this.pending.then(() => this.sample()).catch(() => {});
    }, this.interval_ms);
  }

  private async sample(): Promise<void> {
    const rows = await this.sql<{ state: string | null; wait: string | null }[]>`
      SELECT state, wait_event_type || ':' || wait_event AS wait
      FROM pg_stat_activity
      WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'`;
    this.samples++;
    for (const row of rows) {
      if (row.state === "active") {
        this.busy++;
        const key = row.wait ?? "CPU";
        this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
      } else if (row.state === "idle") {
        this.idle++;
      }
    }
  }

  /** Average active and idle connections per sample, and each wait's share of the active ones. */
  async stop(): Promise<{ samples: number; active_mean: number; idle_mean: number; active_waits: Record<string, number> }> {
    clearInterval(this.timer);
    await this.pending;
    const shares = [...this.counts]
      .sort((left, right) => right[1] - left[1])
      .map(([key, count]) => [key, Math.round((count / Math.max(1, this.busy)) * 1000) / 1000] as const);
    return {
      samples: this.samples,
      active_mean: Math.round((this.busy / Math.max(1, this.samples)) * 100) / 100,
      idle_mean: Math.round((this.idle / Math.max(1, this.samples)) * 100) / 100,
      active_waits: Object.fromEntries(shares),
    };
  }
}
