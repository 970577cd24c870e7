import type { Database, Queryable } from "../db/port.js";

/**
 * Database pool usage, as tally itself sees it: each query and each transaction holds one connection while it runs,
 * so the operations in flight beyond the pool's size are the ones waiting for a connection. postgres.js exposes no
 * pool statistics, hence counting here, around the port; the cost is two integer updates per operation.
 */
export interface PoolUsage {
  readonly pool_max: number;
  in_flight: number;
}

const usageByDatabase = new WeakMap<Database, PoolUsage>();

export function poolUsage(database: Database): PoolUsage | undefined {
  return usageByDatabase.get(database);
}

/** The same database, counting its operations in flight; the drizzle `orm` (cold queries) is not counted. */
export function instrumentPool(database: Database, pool_max: number): Database {
  const usage: PoolUsage = { pool_max, in_flight: 0 };
  async function tracked<T>(work: () => Promise<T>): Promise<T> {
    usage.in_flight++;
    try {
      return await work();
    } finally {
      usage.in_flight--;
    }
  }
  const instrumented: Database = {
    kind: database.kind,
    orm: database.orm,
    query: <Row extends object>(text: string, parameters?: readonly unknown[]) => tracked(() => database.query<Row>(text, parameters)),
    transaction: <T>(work: (transaction: Queryable) => Promise<T>) => tracked(() => database.transaction(work)),
    listen: (channel, on_notify, on_connect) => database.listen(channel, on_notify, on_connect),
    close: () => database.close(),
  };
  usageByDatabase.set(instrumented, usage);
  return instrumented;
}
