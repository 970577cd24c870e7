import type { Database, Queryable } from "../../db/port.js";

/**
 * Runs `work` in one read-only REPEATABLE READ transaction: every statement sees the same snapshot, so the fold's
 * state, its lot rows and the entries after it are read consistently without taking the fold's lock. Allowed
 * because nothing here writes or relies on seeing a commit that happens during the work.
 */
export async function readInOneSnapshot<T>(database: Database, work: (transaction: Queryable) => Promise<T>): Promise<T> {
  return database.transaction(async (transaction) => {
    await transaction.query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY");
    return work(transaction);
  });
}
