import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import path from "node:path";
import { createInterface } from "node:readline";
import postgres from "postgres";

/**
 * A real tally process (src/main.ts) on a port the OS picks, for tests that need the whole server: the README
 * examples run with curl, the usage reporter across a restart. `freshDatabase` makes a database of its own next to
 * the test database, so state (event ids, fixed account ids) starts from nothing.
 */

const ROOT = path.resolve(import.meta.dirname, "../..");

export async function freshDatabase(test_database_url: string): Promise<{ url: string; drop: () => Promise<void> }> {
  const name = `tally_${randomBytes(6).toString("hex")}`;
  const admin = postgres(test_database_url, { max: 1, onnotice: () => {} });
  await admin.unsafe(`CREATE DATABASE ${name}`);
  const url = new URL(test_database_url);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: async () => {
      await admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await admin.end();
    },
  };
}

export interface TallyProcess {
  url: string;
  port: number;
  logs: string[];
  stop(): Promise<void>;
  /** SIGKILL: the process dies at once, with no drain and nothing finished, as in a crash. */
  kill(): Promise<void>;
}

export async function startTally(environment: Record<string, string>, options: { port?: number } = {}): Promise<TallyProcess> {
  const child: ChildProcess = spawn(process.execPath, ["--import", "tsx", "src/main.ts"], {
    cwd: ROOT,
    // LOG_LEVEL info: the "tally is listening" line is how the port is learnt.
    env: { PATH: process.env.PATH, HOST: "127.0.0.1", ...environment, PORT: String(options.port ?? 0), LOG_LEVEL: "info" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const logs: string[] = [];
  createInterface({ input: child.stderr! }).on("line", (line) => logs.push(line));
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`tally did not start within 60 s:\n${logs.join("\n")}`)), 60_000);
    child.once("exit", (code) => reject(new Error(`tally exited with ${code} before listening:\n${logs.join("\n")}`)));
    createInterface({ input: child.stdout! }).on("line", (line) => {
      logs.push(line);
      try {
        const entry = JSON.parse(line) as { msg?: string; port?: number };
        if (entry.msg === "tally is listening" && entry.port) {
          clearTimeout(timer);
          resolve(entry.port);
        }
      } catch {
        // not a log line
      }
    });
  });
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    logs,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
      }),
    kill: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once("exit", () => resolve());
        child.kill("SIGKILL");
      }),
  };
}
