import { fork, type ChildProcess } from "node:child_process";
import { mkdtemp, readdir, rm, writeFile, mkdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { acquireDirectoryLock, DirectoryLockedError } from "../../src/db/directory-lock.js";

/** A pid far above any pid_max: no such process. */
const DEAD_PID = 2147483646;
const RACERS = 4;
const TRIALS = 100;

interface Racer {
  child: ChildProcess;
  pid: number;
  next(): Promise<any>;
}

function startRacer(): Promise<Racer> {
  const child = fork(path.join(import.meta.dirname, "../support/lock-racer.ts"), [], {
    execArgv: ["--import", "tsx"],
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const inbox: any[] = [];
  const waiting: ((message: any) => void)[] = [];
  child.on("message", (message) => {
    const resolve = waiting.shift();
    if (resolve) resolve(message);
    else inbox.push(message);
  });
  const next = () => (inbox.length > 0 ? Promise.resolve(inbox.shift()) : new Promise<any>((resolve) => waiting.push(resolve)));
  return next().then((ready) => ({ child, pid: ready.pid, next }));
}

/** What each trial finds in the directory before the racers start. */
type Seed = "nothing" | "dead holder" | "released" | "legacy file of a dead pid" | "a racer's own pid" | "legacy file of a racer's own pid";
const SEEDS: Seed[] = ["nothing", "dead holder", "released", "legacy file of a dead pid", "a racer's own pid", "legacy file of a racer's own pid"];

async function seed(directory: string, kind: Seed, ownPid: number): Promise<void> {
  const record = (pid: number, released = false) => JSON.stringify({ pid, token: "left-behind", started: null, released });
  const lockDirectory = path.join(directory, "tally.lock");
  if (kind === "nothing") return;
  if (kind.startsWith("legacy")) {
    await writeFile(lockDirectory, `${kind.endsWith("dead pid") ? DEAD_PID : ownPid}\n`);
    return;
  }
  await mkdir(lockDirectory);
  await writeFile(path.join(lockDirectory, "7"), record(kind === "dead holder" ? DEAD_PID : ownPid, kind === "released"));
}

describe("the embedded store's directory lock", () => {
  let racers: Racer[] = [];
  let root: string;

  beforeAll(async () => {
    root = await mkdtemp(path.join(tmpdir(), "tally-lock-race-"));
    racers = await Promise.all(Array.from({ length: RACERS }, startRacer));
  });

  afterAll(async () => {
    for (const racer of racers) racer.child.disconnect();
    await rm(root, { recursive: true, force: true });
  });

  it(`lets exactly one of ${RACERS} processes win each of ${TRIALS} racing starts, whatever was left behind`, async () => {
    const failures: string[] = [];
    for (let trial = 0; trial < TRIALS; trial++) {
      const kind = SEEDS[trial % SEEDS.length]!;
      const directory = path.join(root, `trial-${trial}`);
      await mkdir(directory);
      // The "own pid" seeds name one racer's pid, as a container restarted after a crash finds pid 1 in the lock.
      const owner = racers[trial % RACERS]!;
      await seed(directory, kind, owner.pid);
      for (const racer of racers) racer.child.send({ directory });
      const answers = await Promise.all(racers.map((racer) => racer.next()));
      const errors = answers.filter((answer) => answer.error);
      const winners = answers.filter((answer) => answer.won);
      if (errors.length > 0) failures.push(`trial ${trial} (${kind}): ${errors.map((answer) => answer.error).join("; ")}`);
      if (winners.length !== 1) failures.push(`trial ${trial} (${kind}): ${winners.length} winners`);
      // (The old single-file format is removed by whoever reads it first, so there any one racer may win.)
      if (kind === "a racer's own pid" && winners[0]?.pid !== owner.pid) failures.push(`trial ${trial} (${kind}): the pid's own process did not win`);
      for (const racer of racers) racer.child.send({ release: true });
      await Promise.all(racers.map((racer) => racer.next()));
    }
    expect(failures).toEqual([]);
  });

  it("takes a lock whose record holds this process's own pid, and refuses a second open while held", async () => {
    const directory = await mkdtemp(path.join(tmpdir(), "tally-lock-own-"));
    try {
      await mkdir(path.join(directory, "tally.lock"));
      await writeFile(path.join(directory, "tally.lock", "3"), JSON.stringify({ pid: process.pid, token: "earlier-life", started: null }));
      const lock = await acquireDirectoryLock(directory);
      await expect(acquireDirectoryLock(directory)).rejects.toBeInstanceOf(DirectoryLockedError);
      await lock.release();
      const again = await acquireDirectoryLock(directory);
      await again.release();
      // Generations below the holder are pruned: the directory does not grow with every start.
      expect((await readdir(path.join(directory, "tally.lock"))).filter((name) => /^\d+$/.test(name))).toEqual(["5"]);
    } finally {
      await rm(directory, { recursive: true, force: true });
    }
  });

  it("takes over the old single-file lock left by this process's own pid", async () => {
    const directory = await mkdtemp(path.join(tmpdir(), "tally-lock-legacy-"));
    try {
      await writeFile(path.join(directory, "tally.lock"), `${process.pid}\n`);
      const lock = await acquireDirectoryLock(directory);
      await lock.release();
    } finally {
      await rm(directory, { recursive: true, force: true });
    }
  });

  it("treats a live pid whose kernel start time differs as a reused pid, not the holder", async () => {
    const directory = await mkdtemp(path.join(tmpdir(), "tally-lock-reused-"));
    try {
      await mkdir(path.join(directory, "tally.lock"));
      // pid 1 is alive, but it did not start at tick 1 of this boot's clock unless it really did.
      await writeFile(path.join(directory, "tally.lock", "1"), JSON.stringify({ pid: 1, token: "other", started: "-1" }));
      const lock = await acquireDirectoryLock(directory);
      await lock.release();
    } finally {
      await rm(directory, { recursive: true, force: true });
    }
  });
});
