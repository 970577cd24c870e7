import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, readFileSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";

/**
 * tally as a child process, exactly as `npm start` runs it (`node --import tsx src/main.ts`), listening on
 * 127.0.0.1 on a free port. A child rather than in-process so that its memory can be read from /proc (VmHWM is the
 * peak resident set) and its CPU profiled on its own, apart from the load generator.
 */

export const REPOSITORY_ROOT = fileURLToPath(new URL("../..", import.meta.url));
export const BENCH_ADMIN_KEY = "bench-admin-key-0123456789abcdef0123456789";

export interface TallyOptions {
  database_url: string;
  /** Extra environment: CHECKPOINT_REFRESH_EVERY and the like. */
  env?: Record<string, string>;
  /** Directory for a V8 CPU profile (`--cpu-prof`), written when the process exits. */
  cpu_profile_dir?: string;
  label: string;
}

export interface TallyProcess {
  port: number;
  pid: number;
  pool_max: number;
  /** Peak and current resident set of the child, from /proc/<pid>/status. */
  memory(): { peak_rss_bytes: number; rss_bytes: number };
  /** Lines the child logged at warn or above (request logs are off at LOG_LEVEL=warn). */
  warnings(): string[];
  stop(): Promise<number | null>;
}

export const TALLY_POOL_MAX = 20;

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

function readStatusField(pid: number, field: string): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const match = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status);
  return match ? Number(match[1]) * 1024 : 0;
}

const running = new Set<TallyProcess>();
const runningChildren = new Set<ChildProcess>();

// However the bench process ends (an uncaught error, process.exit), it takes its tally children with it.
process.on("exit", () => {
  for (const child of runningChildren) child.kill("SIGKILL");
});

/** One record per tally child, kept for the scenario's JSON. */
export interface TallyRecord {
  label: string;
  env: Record<string, string>;
  rss_at_ready_bytes: number;
  peak_rss_bytes: number;
  exit_code: number | null;
}

let records: TallyRecord[] = [];

/** The records of every child started since the last call. */
export function takeTallyRecords(): TallyRecord[] {
  const taken = records;
  records = [];
  return taken;
}

/**
 * Stops every child still running, tally processes and ceiling servers alike; the runner calls it when a scenario
 * ends, however it ends. A scenario that fails half-way never reaches its own `stop()` calls, and a child left
 * running keeps the bench process (and so CI) from exiting.
 */
export async function stopAllChildren(): Promise<void> {
  await Promise.all([...running].map((tally) => tally.stop()));
  await Promise.all([...runningChildren].map((child) => {
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    child.kill("SIGTERM");
    const killer = setTimeout(() => child.kill("SIGKILL"), 5_000);
    return exited.finally(() => clearTimeout(killer));
  }));
}

export async function startTally(options: TallyOptions): Promise<TallyProcess> {
  const port = await freePort();
  const pool_max = Number(options.env?.DATABASE_POOL_MAX ?? TALLY_POOL_MAX);
  const nodeArguments = ["--import", "tsx"];
  if (options.cpu_profile_dir) {
    // One directory per child: V8 writes one profile per thread (tsx's module loader runs in a worker thread), named
    // by pid and thread; the main thread's is the large one.
    const directory = path.join(options.cpu_profile_dir, options.label);
    mkdirSync(directory, { recursive: true });
    nodeArguments.push("--cpu-prof", "--cpu-prof-dir", directory);
  }
  const child: ChildProcess = spawn(process.execPath, [...nodeArguments, path.join("src", "main.ts")], {
    cwd: REPOSITORY_ROOT,
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      NODE_ENV: "production",
      DATABASE_URL: options.database_url,
      HOST: "127.0.0.1",
      PORT: String(port),
      TALLY_ADMIN_KEY: BENCH_ADMIN_KEY,
      // Request logs at info would cost tally CPU on every request; warn keeps the figures about the ledger.
      LOG_LEVEL: "warn",
      DATABASE_POOL_MAX: String(pool_max),
      MIGRATE_ON_START: "false",
      ...options.env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const pid = child.pid;
  if (pid === undefined) throw new Error("could not spawn tally");
  runningChildren.add(child);
  child.on("exit", () => runningChildren.delete(child));

  let output = "";
  const warningLines: string[] = [];
  let exitCode: number | null | undefined;
  const exited = new Promise<number | null>((resolve) => {
    child.on("exit", (code, signal) => {
      exitCode = code ?? (signal ? -1 : null);
      resolve(exitCode);
    });
  });
  const keep = (chunk: Buffer) => {
    const text = chunk.toString("utf8");
    output = (output + text).slice(-20_000);
    for (const line of text.split("\n")) {
      if (line.trim() !== "" && warningLines.length < 200) warningLines.push(line.slice(0, 1000));
    }
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);

  let peak = 0;
  let current = 0;
  const record: TallyRecord = { label: options.label, env: options.env ?? {}, rss_at_ready_bytes: 0, peak_rss_bytes: 0, exit_code: null };
  records.push(record);
  const sample = () => {
    if (exitCode !== undefined) return;
    try {
      peak = Math.max(peak, readStatusField(pid, "VmHWM"));
      current = readStatusField(pid, "VmRSS");
      record.peak_rss_bytes = peak;
    } catch {
      // the process is gone; keep the last reading
    }
  };

  let stopping: Promise<number | null> | undefined;
  const tally: TallyProcess = {
    port,
    pid,
    pool_max,
    memory() {
      sample();
      return { peak_rss_bytes: peak, rss_bytes: current };
    },
    warnings: () => [...warningLines],
    stop() {
      stopping ??= (async () => {
        sample();
        if (exitCode === undefined) {
          child.kill("SIGTERM");
          const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
          await exited;
          clearTimeout(timer);
        }
        running.delete(tally);
        record.exit_code = exitCode ?? null;
        return exitCode ?? null;
      })();
      return stopping;
    },
  };
  running.add(tally);

  // Ready when /ready answers 200 (the database answers); give up after 30 s or if the child exits.
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (exitCode !== undefined) {
      running.delete(tally);
      throw new Error(`tally exited with ${exitCode} before it was ready:\n${output}`);
    }
    const ready = await fetch(`http://127.0.0.1:${port}/ready`).then(
      (response) => response.status === 200,
      () => false,
    );
    if (ready) break;
    if (Date.now() > deadline) {
      await tally.stop();
      throw new Error(`tally did not become ready within 30 s:\n${output}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  sample();
  record.rss_at_ready_bytes = current;
  return tally;
}

/**
 * A ceiling server as a child process, stopped with the scenario's tally children: by default the no-database HTTP
 * ceiling (ceiling-server.ts); `ledger-ceiling-server.ts` with its database URL is tally's posting path behind bare
 * node:http.
 */
export async function startCeiling(
  script = "ceiling-server.ts",
  script_arguments: string[] = [],
): Promise<{ port: number; pid: number; stop(): Promise<void> }> {
  const child = spawn(process.execPath, ["--import", "tsx", path.join("bench", "lib", script), ...script_arguments], {
    cwd: REPOSITORY_ROOT,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, NODE_ENV: "production" },
    stdio: ["ignore", "pipe", "inherit"],
  });
  if (child.pid === undefined) throw new Error(`could not spawn ${script}`);
  runningChildren.add(child);
  const exited = new Promise<void>((resolve) => child.on("exit", () => resolve()));
  child.on("exit", () => runningChildren.delete(child));
  const port = await new Promise<number>((resolve, reject) => {
    let text = "";
    child.stdout!.on("data", (chunk: Buffer) => {
      text += chunk.toString("utf8");
      if (text.includes("\n")) resolve(Number(text.split("\n")[0]));
    });
    child.on("exit", () => reject(new Error(`${script} exited before it listened`)));
  });
  return {
    port,
    pid: child.pid,
    async stop() {
      child.kill("SIGTERM");
      await exited;
    },
  };
}
