/**
 * Counts failed authentications per client address in fixed windows. Past `failures_max` in a window, the address
 * is throttled until the window ends: its tokens are then checked only against what this process already knows
 * (the admin key, cached keys, the last-read set of key ids), and anything that would need a database read is
 * answered 429. Bounded: at most `addresses_max` addresses are tracked; the oldest is forgotten first.
 */
export class FailedAuthentications {
  private readonly windows = new Map<string, { started_ms: number; failures: number }>();

  constructor(
    private readonly options: { failures_max: number; window_ms: number; addresses_max: number },
    private readonly now_ms: () => number = Date.now,
  ) {}

  /** Seconds until the address may try unknown credentials again, or 0 when it is not throttled. */
  throttledFor(address: string): number {
    const window = this.current(address);
    if (!window || window.failures < this.options.failures_max) return 0;
    return Math.max(1, Math.ceil((window.started_ms + this.options.window_ms - this.now_ms()) / 1000));
  }

  record(address: string): void {
    let window = this.current(address);
    if (!window) {
      window = { started_ms: this.now_ms(), failures: 0 };
      this.windows.set(address, window);
      if (this.windows.size > this.options.addresses_max) {
        const oldest = this.windows.keys().next().value;
        if (oldest !== undefined) this.windows.delete(oldest);
      }
    }
    window.failures++;
  }

  private current(address: string) {
    const window = this.windows.get(address);
    if (window && this.now_ms() - window.started_ms >= this.options.window_ms) {
      this.windows.delete(address);
      return undefined;
    }
    return window;
  }
}

export const FAILED_AUTHENTICATION_DEFAULTS = { failures_max: 30, window_ms: 60_000, addresses_max: 10_000 };
