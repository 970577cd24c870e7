import { readdirSync, readFileSync } from "node:fs";
import os from "node:os";

/**
 * Where the CPU went during a measurement: tally's process, the load generator (this process), and the rest of
 * the machine, which during a run is PostgreSQL's backends almost entirely. On two shared cores this is the first
 * thing to look at when a figure is lower than expected: if the machine is saturated, the figure is a CPU budget.
 */

const TICKS_PER_SECOND = 100; // USER_HZ on Linux

interface Snapshot {
  at: number;
  machine_busy_s: number;
  interrupts_s: number;
  tally_s: number;
  bench_s: number;
  /** CPU seconds per PostgreSQL process, so one that exits or starts inside a window cannot skew the total. */
  postgres_s: Map<number, number>;
}

function machineSeconds(): { busy: number; interrupts: number } {
  const line = readFileSync("/proc/stat", "utf8").split("\n")[0]!;
  const fields = line.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal …: busy is everything but idle and iowait.
  const total = fields.slice(0, 8).reduce((sum, value) => sum + value, 0);
  const idle = (fields[3] ?? 0) + (fields[4] ?? 0);
  // irq + softirq: on loopback, much of the network stack (HTTP and the PostgreSQL protocol) runs here and is
  // charged to no process.
  return { busy: (total - idle) / TICKS_PER_SECOND, interrupts: ((fields[5] ?? 0) + (fields[6] ?? 0)) / TICKS_PER_SECOND };
}

let benchDatabase: string | undefined;

/** Backends connected to other databases on the same server are someone else's load, not the benchmark's. */
export function setBenchDatabase(name: string): void {
  benchDatabase = name;
}

/**
 * CPU of the server's processes that serve the benchmark: its auxiliary processes and the backends connected to
 * the scratch database (a backend's title is `postgres: <cluster>: <user> <database> <client> <state>`). A process
 * that exits during the window takes its time with it: connections here live for the whole measurement, but the
 * parallel workers of a parallel query do not, so measurements of parallel queries carry no CPU split.
 */
function postgresSeconds(): Map<number, number> {
  const seconds = new Map<number, number>();
  for (const entry of readdirSync("/proc")) {
    if (!/^[0-9]+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const open = stat.indexOf("(");
      const close = stat.lastIndexOf(")");
      if (stat.slice(open + 1, close) !== "postgres") continue;
      if (benchDatabase !== undefined) {
        const title = readFileSync(`/proc/${entry}/cmdline`, "utf8").replaceAll("\0", " ");
        const backend = /^postgres: [^:]+: (\S+) (\S+) \S+/.exec(title);
        const auxiliary = title.includes(": autovacuum") || title.includes(": parallel worker");
        if (backend && !auxiliary && backend[2] !== benchDatabase) continue;
      }
      const fields = stat.slice(close + 2).split(" ");
      seconds.set(Number(entry), (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND);
    } catch {
      // gone
    }
  }
  return seconds;
}

/**
 * PostgreSQL CPU inside a window, counted per process: a process alive at the end contributes what it used since
 * the start (all of its time if it started inside the window); one that exited inside the window is left out
 * (its last reading is unknown) instead of subtracting its whole life, which made the total negative.
 */
function postgresDelta(start: Map<number, number>, end: Map<number, number>): number {
  let total = 0;
  for (const [pid, seconds] of end) total += seconds - (start.get(pid) ?? 0);
  return total;
}

function processSeconds(pids: number | readonly number[] | undefined): number {
  if (pids === undefined) return 0;
  if (typeof pids !== "number") return pids.reduce((sum, pid) => sum + processSeconds(pid), 0);
  const pid = pids;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // Fields 14 and 15 (utime, stime), counted from 1 with the pid first: here indexes 11 and 12.
    return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
  } catch {
    return 0;
  }
}

export interface CpuUsage {
  wall_s: number;
  /** Cores' worth of CPU used, per part: 2.0 means both cores fully busy. */
  machine_cores: number;
  tally_cores: number;
  bench_cores: number;
  /** PostgreSQL's processes (server, backends, WAL writer, …) that were alive at both ends of the window. */
  postgres_cores: number;
  /** irq + softirq time: loopback networking, mostly, charged to no process. */
  interrupts_cores: number;
  /** Machine busy time in none of the above. */
  other_cores: number;
  machine_cores_available: number;
}

export class CpuMeter {
  private start: Snapshot;

  /** `tally_pid`: the server process (or processes) measured, whose CPU is reported as tally's. */
  constructor(private readonly tally_pid?: number | readonly number[]) {
    this.start = this.snapshot();
  }

  private snapshot(): Snapshot {
    const usage = process.cpuUsage();
    const machine = machineSeconds();
    return {
      at: performance.now(),
      machine_busy_s: machine.busy,
      interrupts_s: machine.interrupts,
      tally_s: processSeconds(this.tally_pid),
      bench_s: (usage.user + usage.system) / 1e6,
      postgres_s: postgresSeconds(),
    };
  }

  reset(): void {
    this.start = this.snapshot();
  }

  read(): CpuUsage {
    const end = this.snapshot();
    const wall = (end.at - this.start.at) / 1000;
    const per = (value: number) => Math.round((value / wall) * 100) / 100;
    const machine = end.machine_busy_s - this.start.machine_busy_s;
    const tally = end.tally_s - this.start.tally_s;
    const bench = end.bench_s - this.start.bench_s;
    const postgres = postgresDelta(this.start.postgres_s, end.postgres_s);
    const interrupts = end.interrupts_s - this.start.interrupts_s;
    return {
      wall_s: Math.round(wall * 100) / 100,
      machine_cores: per(machine),
      tally_cores: per(tally),
      bench_cores: per(bench),
      postgres_cores: per(postgres),
      interrupts_cores: per(interrupts),
      other_cores: per(Math.max(0, machine - tally - bench - postgres - interrupts)),
      machine_cores_available: os.cpus().length,
    };
  }
}

/** Cores' worth of CPU used by everything but this process and the benchmark's PostgreSQL, over `window_ms`. */
export async function backgroundLoad(window_ms = 1000): Promise<number> {
  const meter = new CpuMeter();
  await new Promise((resolve) => setTimeout(resolve, window_ms));
  const usage = meter.read();
  return usage.other_cores + usage.interrupts_cores;
}

/**
 * Waits, up to `max_ms`, for the machine to fall quiet (background load under `threshold_cores`); returns the last
 * reading. Two cores have no slack: another process's burst lands straight in the figures.
 */
export async function waitForQuiet(max_ms: number, threshold_cores = 0.15): Promise<{ background_cores: number; waited_ms: number }> {
  const started = performance.now();
  let background = await backgroundLoad();
  while (background > threshold_cores && performance.now() - started < max_ms) background = await backgroundLoad();
  return { background_cores: Math.round(background * 100) / 100, waited_ms: Math.round(performance.now() - started) };
}
