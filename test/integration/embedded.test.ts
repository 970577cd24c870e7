import { spawn } from "node:child_process";
import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApp } from "../../src/app.js";
import { ServiceKeyVerifier } from "../../src/auth/service-keys.js";
import { DirectoryLockedError } from "../../src/db/directory-lock.js";
import { openEmbedded } from "../../src/db/embedded.js";
import { openDatabase } from "../../src/db/open.js";
import type { Database } from "../../src/db/port.js";
import { createLedgerContext } from "../../src/ledger/core/context.js";
import { createLogger } from "../../src/logger.js";

const ADMIN = "embedded-admin-key-0123456789abcdef0123";
let dataDir: string;
let database: Database;

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(tmpdir(), "tally-embedded-"));
  database = await openDatabase(
    { DATABASE_URL: undefined, DATA_DIR: dataDir, DATABASE_POOL_MAX: 1, REQUEST_TIMEOUT_MS: 30_000 },
    { migrate: true },
  );
});

afterAll(async () => {
  await database?.close();
  await rm(dataDir, { recursive: true, force: true });
});

function appOn(db: Database) {
  const logger = createLogger("silent");
  const app = createApp({
    database: db,
    ledger: createLedgerContext({ database: db, logger, refresh_every: 2, delta_max: 3 }),
    logger,
    authenticators: { service_keys: new ServiceKeyVerifier(db.orm), jwt: undefined, admin_key: ADMIN },
    limits: { max_body_bytes: 1 << 20, request_timeout_ms: 30_000, cors_origins: [] },
  });
  return async (method: string, url: string, body?: unknown) => {
    const response = await app.request(url, {
      method,
      headers: { authorization: `Bearer ${ADMIN}`, "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: response.status, body: (await response.json()) as any, headers: response.headers };
  };
}

describe("the embedded store", () => {
  it("serves the ledger API through the same SQL and migrations", async () => {
    const call = appOn(database);
    expect((await call("POST", "/v1/accounts", { id: "org_embedded" })).status).toBe(201);
    expect((await call("POST", "/v1/credits", { account_id: "org_embedded", type: "grant", amount: "5", idempotency_key: "g1" })).status).toBe(201);
    const replay = await call("POST", "/v1/credits", { account_id: "org_embedded", type: "grant", amount: "5.0", idempotency_key: "g1" });
    expect(replay.status).toBe(200);
    expect(replay.headers.get("idempotent-replayed")).toBe("true");
    const batch = await call("POST", "/v1/usage/batch", {
      entries: Array.from({ length: 7 }, (_, index) => ({ account_id: "org_embedded", amount: "0.000000001", idempotency_key: `u${index}` })),
    });
    expect(batch.body).toEqual({ inserted: 7, replayed: 0 });
    const refused = await call("POST", "/v1/debits", { account_id: "org_embedded", amount: "5", idempotency_key: "d1" });
    expect(refused.status).toBe(409);
    expect(refused.body).toMatchObject({ code: "insufficient_balance", balance: "4.999999993", deficit: "0.000000007" });
    // delta_max is 3, so this read refreshes the checkpoint; the next read must agree to the nano-credit.
    expect((await call("GET", "/v1/balances/org_embedded")).body.balance).toBe("4.999999993");
    expect((await call("GET", "/v1/balances/org_embedded")).body.balance).toBe("4.999999993");
    const [checkpoint] = await database.query<{ balance: string }>("SELECT balance::text FROM balance_checkpoints WHERE account_id = 'org_embedded'");
    expect(checkpoint?.balance).toBeDefined();
  });

  it("refuses UPDATE and DELETE on entries", async () => {
    await expect(database.query("UPDATE entries SET description = 'x'")).rejects.toThrow(/append-only/);
    await expect(database.query("DELETE FROM entries")).rejects.toThrow(/append-only/);
  });

  it("refuses a second open of the same directory while the first holds it", async () => {
    await expect(openEmbedded({ data_dir: dataDir })).rejects.toBeInstanceOf(DirectoryLockedError);
  });

  it("takes over a lock left by a process that no longer exists, and keeps the data", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "tally-stale-"));
    try {
      const first = await openDatabase({ DATABASE_URL: undefined, DATA_DIR: dir, DATABASE_POOL_MAX: 1, REQUEST_TIMEOUT_MS: 30_000 }, { migrate: true });
      await first.query("INSERT INTO accounts (id) VALUES ('kept')");
      await first.close();
      // The holder's record as a crash leaves it (not released), naming a pid far above any pid_max.
      const [generation] = (await readdir(path.join(dir, "tally.lock"))).filter((name) => /^\d+$/.test(name));
      await writeFile(path.join(dir, "tally.lock", generation!), JSON.stringify({ pid: 2147483646, token: "crashed", started: null }));
      const second = await openEmbedded({ data_dir: dir });
      try {
        expect(await second.query("SELECT id FROM accounts")).toEqual([{ id: "kept" }]);
      } finally {
        await second.close();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("npm start with no configuration", () => {
  it("says it is on the embedded store and serves /health", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "tally-start-"));
    const child = spawn(process.execPath, ["--import", "tsx", "src/main.ts"], {
      env: { PATH: process.env.PATH, DATA_DIR: dir, PORT: "0", HOST: "127.0.0.1", LOG_LEVEL: "info", TALLY_ADMIN_KEY: ADMIN },
      stdio: ["ignore", "pipe", "pipe"],
    });
    try {
      const lines = createInterface({ input: child.stdout! });
      const logs: { msg: string; port?: number }[] = [];
      const port = await new Promise<number>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no listening line; got ${JSON.stringify(logs)}`)), 60_000);
        lines.on("line", (line) => {
          const log = JSON.parse(line);
          logs.push(log);
          if (log.msg === "tally is listening") {
            clearTimeout(timer);
            resolve(log.port);
          }
        });
        child.on("exit", (code) => reject(new Error(`tally exited with ${code}`)));
      });
      expect(logs[0]?.msg).toMatch(/single-process embedded store/);
      const health = await fetch(`http://127.0.0.1:${port}/health`);
      expect(await health.json()).toEqual({ status: "ok" });
      const ready = await fetch(`http://127.0.0.1:${port}/ready`);
      expect(ready.status).toBe(200);
      // An open event stream must not hold up a graceful shutdown (the store is closed cleanly, exit code 0).
      const stream = await fetch(`http://127.0.0.1:${port}/v1/events`, { headers: { authorization: `Bearer ${ADMIN}` } });
      expect(stream.status).toBe(200);
      const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
      const stoppedAt = Date.now();
      child.kill("SIGTERM");
      expect(await exited).toBe(0);
      expect(Date.now() - stoppedAt).toBeLessThan(8_000);
      await stream.body?.cancel().catch(() => {});
    } finally {
      if (child.exitCode === null) {
        child.kill("SIGKILL");
        await new Promise((resolve) => child.once("exit", resolve));
      }
      await rm(dir, { recursive: true, force: true });
    }
  });
});
