import { execFile, execFileSync } from "node:child_process";
import { promisify } from "node:util";
import { randomBytes } from "node:crypto";
import postgres from "postgres";

/**
 * A PostgreSQL 15 cluster that one test owns, on its own port, so that the test can stop and start the server
 * under load without touching the shared one. Always `drop()` it, even when the test fails.
 */
export interface PrivateCluster {
  url: string;
  stop(): Promise<void>;
  start(): Promise<void>;
  drop(): void;
}

function run(command: string, args: string[]): void {
  execFileSync(command, args, { stdio: ["ignore", "ignore", "pipe"] });
}

/** Not execFileSync: the server under test shares this event loop and must keep answering meanwhile. */
async function runAsync(command: string, args: string[]): Promise<void> {
  await promisify(execFile)(command, args);
}

export async function createPrivateCluster(options: { port: number }): Promise<PrivateCluster> {
  const name = `tally_outage_${randomBytes(4).toString("hex")}`;
  run("pg_createcluster", ["15", name, "--port", String(options.port), "--", "--auth=trust"]);
  const cluster: PrivateCluster = {
    url: `postgres://postgres@127.0.0.1:${options.port}/tally`,
    // Fast shutdown: open sessions are terminated, as in an operator's restart or a failover.
    stop: () => runAsync("pg_ctlcluster", ["15", name, "stop", "-m", "fast"]),
    start: () => runAsync("pg_ctlcluster", ["15", name, "start"]),
    drop: () => run("pg_dropcluster", ["--stop", "15", name]),
  };
  try {
    await cluster.start();
    const admin = postgres(`postgres://postgres@127.0.0.1:${options.port}/postgres`, { max: 1, onnotice: () => {} });
    try {
      await admin.unsafe("CREATE DATABASE tally");
    } finally {
      await admin.end();
    }
  } catch (error) {
    cluster.drop();
    throw error;
  }
  return cluster;
}
