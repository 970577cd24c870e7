/**
 * The batch roll-up on the embedded store (PGlite): one connection, so the chunks a roll-up reads ahead queue behind
 * the one it applies; the same SQL (text arrays, SET LOCAL, the carried checkpoint) folds exactly.
 */
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLedgerContext } from "../../src/ledger/core/context.js";
import { listHistory } from "../../src/ledger/history/history.js";
import { rollUpBatches } from "../../src/ledger/history/rollup.js";
import { createLogger } from "../../src/logger.js";
import { embeddedApp, openEmbeddedStore, type EmbeddedResponse } from "../support/embedded-app.js";

let store: Awaited<ReturnType<typeof openEmbeddedStore>>;
let call: (method: string, url: string, body?: unknown) => Promise<EmbeddedResponse>;

beforeAll(async () => {
  store = await openEmbeddedStore("tally-history");
  call = embeddedApp(store.database).call;
});

afterAll(async () => {
  await store?.close();
});

describe("roll-up on the embedded store", () => {
  it("folds in chunks read ahead, carries the checkpoint, and the first page agrees", async () => {
    const account = "org_rollup";
    expect((await call("POST", "/v1/accounts", { id: account })).status).toBe(201);
    for (let index = 0; index < 8; index++) {
      const batch_id = randomUUID();
      const entries = [1, 2, 3].map((row) => ({ account_id: account, amount: `${row}`, idempotency_key: `b${index}-${row}`, batch_id }));
      expect((await call("POST", "/v1/usage/batch", { entries })).body).toEqual({ inserted: 3, replayed: 0 });
      await call("POST", "/v1/credits", { account_id: account, type: "grant", amount: "10", idempotency_key: `g${index}` });
    }
    // Chunks of 5 rows: about 7 chunks, several read ahead of each apply.
    const context = createLedgerContext({
      database: store.database,
      logger: createLogger("silent"),
      refresh_every: 1_000_000,
      delta_max: 1_000_000,
      random: () => 0.99,
      fold_chunk_rows: 5,
    });
    expect(await rollUpBatches(context, account)).toBe(true);
    const [folds] = await store.database.query<{ aggregated: string; rows: string; balance: string; same_boundary: boolean }>(
      `SELECT (SELECT SUM(row_count) FROM batch_aggregates WHERE account_id = $1)::text AS aggregated,
              (SELECT SUM(delta_total) FROM batch_aggregates WHERE account_id = $1)::text AS rows,
              (SELECT balance FROM balance_checkpoints WHERE account_id = $1)::text AS balance,
              (SELECT xid_boundary FROM balance_checkpoints WHERE account_id = $1)
                = (SELECT xid_boundary FROM rollup_boundaries WHERE account_id = $1) AS same_boundary`,
      [account],
    );
    expect({ ...folds, rows: Number(folds!.rows), balance: Number(folds!.balance) }).toEqual({ aggregated: "24", rows: -48, balance: 32, same_boundary: true });
    const filters = { types: undefined, search: undefined, from: undefined, to: undefined };
    const page = await listHistory(context, { account_id: account, group_batches: true, limit: 4, offset: 0, after: undefined, filters });
    expect(page.total).toBe(16);
    expect(page.items.map((item) => [item.type, item.amount, item.balance_after])).toEqual([
      ["grant", "10", "32"],
      ["usage", "6", "22"],
      ["grant", "10", "28"],
      ["usage", "6", "18"],
    ]);
  });
});
