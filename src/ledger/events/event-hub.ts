import type { BalanceEvent } from "./crossings.js";

/**
 * In-process wake-ups for event-stream readers. Evaluations in this process publish directly; NOTIFYs from other
 * processes arrive through the database listener. A wake-up carries no data that matters: readers always catch up
 * from the events table, which is the truth.
 */
export class EventHub {
  private readonly listeners = new Set<(event: BalanceEvent | undefined) => void>();

  subscribe(listener: (event: BalanceEvent | undefined) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  publish(event?: BalanceEvent): void {
    for (const listener of this.listeners) listener(event);
  }

  get subscriber_count(): number {
    return this.listeners.size;
  }

  private closing = false;

  /** True once the process is shutting down: stream readers finish and close their responses. */
  get closed(): boolean {
    return this.closing;
  }

  /** Asks every reader to finish, so the HTTP server can close without waiting out hour-long streams. */
  shutdown(): void {
    this.closing = true;
    this.publish();
  }
}
