import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import http from "node:http";
import path from "node:path";
import { createInterface } from "node:readline";
import { beforeAll, describe, expect, inject, it } from "vitest";

const ROOT = path.resolve(import.meta.dirname, "../..");
const ADMIN = "process-admin-key-0123456789abcdef0123";
const WRITERS = 32;

/** `npm start` as the README runs it, on the test database (already migrated by the global setup). */
function npmStart(extra: Record<string, string> = {}): { child: ChildProcess; listening: Promise<{ port: number; pid: number }> } {
  const child = spawn("npm", ["start"], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      DATABASE_URL: inject("databaseUrl"),
      MIGRATE_ON_START: "false",
      PORT: "0",
      HOST: "127.0.0.1",
      LOG_LEVEL: "info",
      TALLY_ADMIN_KEY: ADMIN,
      ...extra,
    },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const listening = new Promise<{ port: number; pid: number }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("tally did not start listening within 60 s")), 60_000);
    createInterface({ input: child.stdout! }).on("line", (line) => {
      if (!line.startsWith("{")) return; // npm's own banner
      const log = JSON.parse(line);
      if (log.msg === "tally is listening") {
        clearTimeout(timer);
        resolve({ port: log.port, pid: log.pid });
      }
    });
    child.once("exit", (code) => reject(new Error(`npm start exited with ${code} before listening`)));
  });
  return { child, listening };
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

interface Outcome {
  status?: number;
  connection?: string;
  error?: string;
  reused: boolean;
  started_ms: number;
}

/** One request on a keep-alive agent; resolves with what happened instead of throwing. */
function call(agent: http.Agent, port: number, method: string, pathname: string, body?: unknown): Promise<Outcome> {
  const started_ms = Date.now();
  return new Promise((resolve) => {
    const request = http.request(
      { agent, host: "127.0.0.1", port, method, path: pathname, headers: { authorization: `Bearer ${ADMIN}`, "content-type": "application/json" } },
      (response) => {
        response.resume();
        response.on("end", () => resolve({ status: response.statusCode, connection: response.headers.connection, reused: request.reusedSocket, started_ms }));
        response.on("error", (error) => resolve({ error: `mid-response: ${error.message}`, reused: request.reusedSocket, started_ms }));
      },
    );
    request.on("error", (error: NodeJS.ErrnoException) => resolve({ error: error.code ?? error.message, reused: request.reusedSocket, started_ms }));
    request.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

beforeAll(() => {
  // What `npm start` does first; done here so that the timed part of the test does not include a compile.
  const built = spawnSync(process.execPath, ["scripts/build-if-needed.mjs"], { cwd: ROOT, stdio: "inherit" });
  expect(built.status).toBe(0);
}, 180_000);

describe("npm start and SIGTERM", () => {
  it("runs compiled JavaScript, and SIGTERM to npm's pid drains keep-alive load and exits 0", async () => {
    const { child, listening } = npmStart({ SHUTDOWN_TIMEOUT_MS: "8000" });
    try {
      const { port, pid } = await listening;
      // The server is node running dist/, not tsx, and it is the process npm started (no shell in between).
      const command = spawnSync("ps", ["-o", "ppid=,args=", "-p", String(pid)], { encoding: "utf8" }).stdout.trim();
      expect(command).toMatch(new RegExp(`^${child.pid} .*node .*dist/main\\.js$`));

      const agent = new http.Agent({ keepAlive: true, maxSockets: WRITERS + 1 });
      const account = `acct_${randomUUID()}`;
      expect((await call(agent, port, "POST", "/v1/accounts", { id: account })).status).toBe(201);

      const outcomes: Outcome[] = [];
      let signalled_ms = Number.POSITIVE_INFINITY;
      let refusedAll = false;
      const writers = Array.from({ length: WRITERS }, async (_, writer) => {
        for (let index = 0; !refusedAll; index++) {
          const outcome = await call(agent, port, "POST", "/v1/credits", {
            account_id: account,
            type: "grant",
            amount: "1",
            idempotency_key: `w${writer}-${index}`,
          });
          outcomes.push(outcome);
          if (outcome.error === "ECONNREFUSED") return;
        }
      });
      // Let the load run on warm keep-alive sockets, then signal npm, not the server.
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
      signalled_ms = Date.now();
      process.kill(child.pid!, "SIGTERM");
      const code = await exited;
      const exitAfter_ms = Date.now() - signalled_ms;
      refusedAll = true;
      await Promise.all(writers);
      agent.destroy();

      expect(code).toBe(0);
      expect(isRunning(pid)).toBe(false);
      expect(exitAfter_ms).toBeLessThan(8_000);

      // Every request was answered in full, or refused before it was sent: a new connection after the listener
      // closed (ECONNREFUSED), or a reused idle socket the server had closed (which a client retries).
      const unexpected = outcomes.filter(
        (outcome) =>
          outcome.error !== undefined &&
          outcome.error !== "ECONNREFUSED" &&
          !(outcome.reused && ["ECONNRESET", "socket hang up", "EPIPE"].includes(outcome.error)),
      );
      expect(unexpected).toEqual([]);
      const answered = outcomes.filter((outcome) => outcome.status !== undefined);
      expect(answered.every((outcome) => outcome.status === 201)).toBe(true);
      // The drain told keep-alive clients to go: responses during it carried Connection: close.
      expect(answered.filter((outcome) => outcome.connection === "close").length).toBeGreaterThan(0);
      expect(answered.filter((outcome) => outcome.started_ms < signalled_ms).length).toBeGreaterThan(WRITERS);
    } finally {
      if (child.exitCode === null) child.kill("SIGKILL");
    }
  }, 120_000);
});
