import postgres from "postgres";
import { afterAll, describe, expect, it } from "vitest";
import { databaseProblem } from "../../src/db/database-errors.js";
import { ERROR_CATALOGUE } from "../../src/errors.js";
import { createHarness } from "../support/harness.js";

const harness = createHarness();
const connections: postgres.Sql[] = [];
const connect = () => {
  const sql = postgres(harness.databaseUrl, { max: 1, onnotice: () => {} });
  connections.push(sql);
  return sql;
};
afterAll(async () => {
  await Promise.all(connections.map((sql) => sql.end({ timeout: 1 })));
  await harness.close();
});

const failureOf = (work: Promise<unknown>) => work.then(() => undefined, (error: unknown) => error);

describe("database failures that are not the request's fault", () => {
  it("statement timeout (57014) is 503 database_timeout", async () => {
    const sql = connect();
    const error = await failureOf(sql.begin(async (transaction) => {
      await transaction`SET LOCAL statement_timeout = 20`;
      await transaction`SELECT pg_sleep(5)`;
    }));
    expect((error as { code: string }).code).toBe("57014");
    expect(databaseProblem(error)?.code).toBe("database_timeout");
  });

  it("a deadlock victim (40P01) is 503 database_conflict", async () => {
    const [left, right] = [connect(), connect()];
    const keys = [Date.now(), Date.now() + 1];
    let leftHolds!: () => void;
    let rightHolds!: () => void;
    const leftReady = new Promise<void>((resolve) => (leftHolds = resolve));
    const rightReady = new Promise<void>((resolve) => (rightHolds = resolve));
    const outcomes = await Promise.all([
      failureOf(left.begin(async (transaction) => {
        await transaction`SELECT pg_advisory_xact_lock(${keys[0]!})`;
        leftHolds();
        await rightReady;
        await transaction`SELECT pg_advisory_xact_lock(${keys[1]!})`;
      })),
      failureOf(right.begin(async (transaction) => {
        await transaction`SELECT pg_advisory_xact_lock(${keys[1]!})`;
        rightHolds();
        await leftReady;
        await transaction`SELECT pg_advisory_xact_lock(${keys[0]!})`;
      })),
    ]);
    const victims = outcomes.filter((outcome) => outcome !== undefined);
    expect(victims).toHaveLength(1);
    expect((victims[0] as { code: string }).code).toBe("40P01");
    expect(databaseProblem(victims[0])?.code).toBe("database_conflict");
  });

  it("an idle-in-transaction timeout (25P03) is 503 database_timeout", async () => {
    const sql = connect();
    const error = await failureOf(sql.begin(async (transaction) => {
      await transaction`SET LOCAL idle_in_transaction_session_timeout = 50`;
      // Idle inside the transaction past the server's limit: the server ends the session.
      await new Promise((resolve) => setTimeout(resolve, 300));
      await transaction`SELECT 1`;
    }));
    // The server sends FATAL 25P03 and closes; postgres.js reports the closed connection. Either way: a 503.
    expect(databaseProblem(error)?.code).toMatch(/^(database_timeout|service_unavailable)$/);
    expect((error as { code: string }).code).toMatch(/^(25P03|CONNECTION_CLOSED)$/);
  });

  it("each is a documented, temporary status", () => {
    for (const code of ["database_timeout", "database_conflict", "service_unavailable"] as const) {
      expect(ERROR_CATALOGUE[code].status).toBe(503);
    }
    expect(databaseProblem(Object.assign(new Error("x"), { code: "23505" }))).toBeUndefined();
  });
});
