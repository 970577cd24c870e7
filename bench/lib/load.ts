import type postgres from "postgres";
import { CpuMeter, type CpuUsage } from "./cpu.js";
import { WaitSampler } from "./waits.js";

/**
 * A closed-loop load generator: `workers` clients, each issuing its next operation as soon as the previous one
 * answers. A warm-up runs first and is not recorded; then the measurement runs for `duration_ms` or until
 * `operations_max` operations have completed, whichever comes first. Every completed operation's latency is kept,
 * so percentiles come from the full sorted sample, not from a histogram.
 *
 * The first failed operation stops every worker and is reported: a benchmark that silently counts errors would
 * measure how fast tally can fail.
 */

export interface LoadOptions {
  workers: number;
  warmup_ms: number;
  duration_ms: number;
  operations_max?: number;
  /** One operation; resolves to the number of rows it wrote (or 1), which becomes rows/s. */
  operation: (worker: number, sequence: number) => Promise<number>;
  /** The first sequence number handed to `operation` (a measurement in several rounds continues the count). */
  first_sequence?: number;
  /** Keep every latency in the result (for merging rounds). */
  keep_samples?: boolean;
  /** Called as the measurement window opens and closes (a CPU meter, for one). */
  on_measure_start?: () => void;
  on_measure_end?: () => void;
}

export interface LoadResult {
  workers: number;
  operations: number;
  rows: number;
  elapsed_s: number;
  operations_per_s: number;
  rows_per_s: number;
  latency_ms: Percentiles;
  next_sequence: number;
  samples?: number[];
}

export interface Percentiles {
  count: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
}

export function percentiles(samples: readonly number[]): Percentiles {
  if (samples.length === 0) return { count: 0, p50: NaN, p90: NaN, p99: NaN, max: NaN, mean: NaN };
  const sorted = Float64Array.from(samples).sort();
  const at = (quantile: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(quantile * sorted.length) - 1))]!;
  let sum = 0;
  for (const value of sorted) sum += value;
  return {
    count: sorted.length,
    p50: at(0.5),
    p90: at(0.9),
    p99: at(0.99),
    max: sorted[sorted.length - 1]!,
    mean: sum / sorted.length,
  };
}

export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  let failure: unknown;
  let phase: "warmup" | "measure" | "stop" = options.warmup_ms > 0 ? "warmup" : "measure";
  let measureStart = phase === "measure" ? performance.now() : 0;
  let measureEnd = 0;
  const latencies: number[] = [];
  let rows = 0;
  let sequence = options.first_sequence ?? 0;
  const operationsMax = options.operations_max ?? Number.POSITIVE_INFINITY;

  const timers: NodeJS.Timeout[] = [];
  const stop = () => {
    if (phase === "stop") return;
    const measured = phase === "measure";
    phase = "stop";
    measureEnd = performance.now();
    if (measured) options.on_measure_end?.();
  };
  const startMeasuring = () => {
    if (phase !== "warmup") return;
    phase = "measure";
    measureStart = performance.now();
    options.on_measure_start?.();
    timers.push(setTimeout(stop, options.duration_ms));
  };
  if (phase === "warmup") {
    timers.push(setTimeout(startMeasuring, options.warmup_ms));
  } else {
    options.on_measure_start?.();
    timers.push(setTimeout(stop, options.duration_ms));
  }

  const worker = async (index: number) => {
    while (phase !== "stop" && failure === undefined) {
      const started = performance.now();
      let written: number;
      try {
        written = await options.operation(index, sequence++);
      } catch (error) {
        failure ??= error;
        stop();
        return;
      }
      const finished = performance.now();
      // Counted if it completed inside the measurement window: operations in flight when the window opens are
      // counted and those in flight when it closes are not, so the rate is unbiased at both ends.
      if (phase === "measure") {
        latencies.push(finished - started);
        rows += written;
        if (latencies.length >= operationsMax) stop();
      }
    }
  };
  await Promise.all(Array.from({ length: options.workers }, (_, index) => worker(index)));
  for (const timer of timers) clearTimeout(timer);
  if (failure !== undefined) throw failure;
  const elapsed_s = (measureEnd - measureStart) / 1000;
  return {
    workers: options.workers,
    operations: latencies.length,
    rows,
    elapsed_s,
    operations_per_s: latencies.length / elapsed_s,
    rows_per_s: rows / elapsed_s,
    latency_ms: percentiles(latencies),
    next_sequence: sequence,
    ...(options.keep_samples ? { samples: latencies } : {}),
  };
}

/** Runs `operation` one at a time `count` times (or until `duration_ms`), keeping each latency. */
export async function sequentialLatencies(
  operation: (sequence: number) => Promise<void>,
  options: { count_max: number; duration_ms: number; count_min?: number },
): Promise<number[]> {
  const latencies: number[] = [];
  const deadline = performance.now() + options.duration_ms;
  for (let sequence = 0; sequence < options.count_max; sequence++) {
    if (performance.now() > deadline && latencies.length >= (options.count_min ?? 1)) break;
    const started = performance.now();
    await operation(sequence);
    latencies.push(performance.now() - started);
  }
  return latencies;
}

export type Measured = LoadResult & { cpu: CpuUsage; waits?: Awaited<ReturnType<WaitSampler["stop"]>> };

/**
 * runLoad, with where the CPU went during the measurement window (see cpu.ts) and, given a connection to sample
 * from, what the database's backends were waiting on (see waits.ts).
 */
export async function runMeasured(options: LoadOptions & { tally_pid?: number | readonly number[]; sample_waits?: postgres.Sql }): Promise<Measured> {
  const meter = new CpuMeter(options.tally_pid);
  const sampler = options.sample_waits ? new WaitSampler(options.sample_waits) : undefined;
  let cpu: CpuUsage | undefined;
  const result = await runLoad({
    ...options,
    on_measure_start: () => {
      meter.reset();
      sampler?.start();
    },
    on_measure_end: () => (cpu = meter.read()),
  });
  const waits = await sampler?.stop();
  return { ...result, cpu: cpu ?? meter.read(), ...(waits ? { waits } : {}) };
}

export type Side = Omit<LoadOptions, "warmup_ms" | "duration_ms" | "first_sequence" | "keep_samples"> & {
  tally_pid?: number | readonly number[];
  sample_waits?: postgres.Sql;
};

/**
 * Measures several sides (tally and its baselines) in alternating rounds, A B A B …, each side getting
 * `duration_ms` in total, and merges each side's rounds. Interleaving spreads any drift or burst of background
 * load over every side instead of landing on one of them; on two shared cores that is most of the noise. Each side
 * warms up once, before its first round.
 */
export async function runInterleaved<Name extends string>(options: {
  rounds: number;
  warmup_ms: number;
  duration_ms: number;
  sides: Record<Name, Side>;
  on_side?: (name: Name, round: number) => void;
}): Promise<Record<Name, Measured & { round_rows_per_s: number[] }>> {
  const names = Object.keys(options.sides) as Name[];
  const rounds = new Map<Name, Measured[]>(names.map((name) => [name, []]));
  const next = new Map<Name, number>(names.map((name) => [name, 0]));
  for (let round = 0; round < options.rounds; round++) {
    for (const name of names) {
      options.on_side?.(name, round);
      const measured = await runMeasured({
        ...options.sides[name],
        warmup_ms: round === 0 ? options.warmup_ms : 0,
        duration_ms: options.duration_ms / options.rounds,
        first_sequence: next.get(name)!,
        keep_samples: true,
      });
      next.set(name, measured.next_sequence);
      rounds.get(name)!.push(measured);
    }
  }
  return Object.fromEntries(names.map((name) => [name, mergeRounds(rounds.get(name)!)])) as Record<Name, Measured & { round_rows_per_s: number[] }>;
}

function mergeRounds(rounds: readonly Measured[]): Measured & { round_rows_per_s: number[] } {
  const samples = rounds.flatMap((round) => round.samples ?? []);
  const operations = rounds.reduce((sum, round) => sum + round.operations, 0);
  const rows = rounds.reduce((sum, round) => sum + round.rows, 0);
  const elapsed_s = rounds.reduce((sum, round) => sum + round.elapsed_s, 0);
  const weighted = (pick: (cpu: CpuUsage) => number) =>
    Math.round((rounds.reduce((sum, round) => sum + pick(round.cpu) * round.cpu.wall_s, 0) / Math.max(1e-9, rounds.reduce((sum, round) => sum + round.cpu.wall_s, 0))) * 100) / 100;
  const cpu: CpuUsage = {
    wall_s: Math.round(rounds.reduce((sum, round) => sum + round.cpu.wall_s, 0) * 100) / 100,
    machine_cores: weighted((usage) => usage.machine_cores),
    tally_cores: weighted((usage) => usage.tally_cores),
    bench_cores: weighted((usage) => usage.bench_cores),
    postgres_cores: weighted((usage) => usage.postgres_cores),
    interrupts_cores: weighted((usage) => usage.interrupts_cores),
    other_cores: Math.max(...rounds.map((round) => round.cpu.other_cores)),
    machine_cores_available: rounds[0]!.cpu.machine_cores_available,
  };
  let waits: Measured["waits"];
  const sampled = rounds.filter((round) => round.waits);
  if (sampled.length > 0) {
    const totalSamples = sampled.reduce((sum, round) => sum + round.waits!.samples, 0);
    const active = sampled.reduce((sum, round) => sum + round.waits!.active_mean * round.waits!.samples, 0);
    const shares = new Map<string, number>();
    for (const round of sampled) {
      for (const [key, share] of Object.entries(round.waits!.active_waits)) {
        shares.set(key, (shares.get(key) ?? 0) + share * round.waits!.active_mean * round.waits!.samples);
      }
    }
    waits = {
      samples: totalSamples,
      active_mean: Math.round((active / Math.max(1, totalSamples)) * 100) / 100,
      idle_mean: Math.round((sampled.reduce((sum, round) => sum + round.waits!.idle_mean * round.waits!.samples, 0) / Math.max(1, totalSamples)) * 100) / 100,
      active_waits: Object.fromEntries(
        [...shares].sort((left, right) => right[1] - left[1]).map(([key, value]) => [key, Math.round((value / Math.max(1e-9, active)) * 1000) / 1000]),
      ),
    };
  }
  return {
    workers: rounds[0]!.workers,
    operations,
    rows,
    elapsed_s,
    operations_per_s: operations / elapsed_s,
    rows_per_s: rows / elapsed_s,
    latency_ms: percentiles(samples),
    next_sequence: rounds.at(-1)!.next_sequence,
    cpu,
    ...(waits ? { waits } : {}),
    round_rows_per_s: rounds.map((round) => Math.round(round.rows_per_s)),
  };
}
