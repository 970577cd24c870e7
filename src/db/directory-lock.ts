import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { link, lstat, mkdir, readdir, readFile, rename, unlink, writeFile } from "node:fs/promises";
import path from "node:path";

export class DirectoryLockedError extends Error {
  constructor(
    readonly lock_path: string,
    readonly holder_pid: number,
  ) {
    super(
      `the embedded store at ${path.dirname(lock_path)} is in use by process ${holder_pid}; ` +
        `stop it first, or set DATA_DIR to another directory (or DATABASE_URL to use PostgreSQL)`,
    );
  }
}

/**
 * What a lock generation file holds. `started` is the holder's start time as the kernel records it (Linux
 * `/proc/<pid>/stat`), so a pid that was reused by an unrelated process is not mistaken for the holder.
 */
interface HolderRecord {
  pid: number;
  token: string;
  started: string | null;
  released?: boolean;
}

/** Rounds of read-then-create before giving up; each lost round means another process moved first. */
const ATTEMPTS_MAX = 8;

/** Tokens of the locks this process holds now. A record with this process's pid and any other token is stale. */
const heldTokens = new Set<string>();

function processStartTime(pid: number | "self"): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the command name, which may itself contain spaces and parentheses; starttime is field 22.
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19] ?? null;
  } catch {
    return null;
  }
}

function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM means the process exists but belongs to someone else: still alive.
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Whether the recorded holder still holds the lock. In a container node runs as pid 1, so after a crash the
 * restarted process finds its own pid in the record: only this process's own held tokens count for its pid.
 */
function isHeld(record: HolderRecord): boolean {
  if (record.released) return false;
  if (record.pid === process.pid) return heldTokens.has(record.token);
  if (!Number.isInteger(record.pid) || record.pid <= 0 || !isProcessAlive(record.pid)) return false;
  if (record.started !== null) {
    const started = processStartTime(record.pid);
    if (started !== null && started !== record.started) return false;
  }
  return true;
}

async function readRecord(file: string): Promise<HolderRecord | undefined> {
  try {
    const parsed = JSON.parse(await readFile(file, "utf8")) as Partial<HolderRecord>;
    return { pid: Number(parsed.pid), token: String(parsed.token), started: parsed.started ?? null, released: parsed.released === true };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    // Records are only ever made visible whole (link, rename), so an unreadable one was not written by tally.
    return { pid: 0, token: "", started: null, released: true };
  }
}

async function generations(lockDirectory: string): Promise<number[]> {
  const names = await readdir(lockDirectory);
  return names
    .filter((name) => /^[1-9][0-9]{0,15}$/.test(name))
    .map(Number)
    .sort((a, b) => b - a);
}

/**
 * Before lock generations, `tally.lock` was a file holding a pid. One left by a process that is gone (or by an
 * earlier life of this very pid) is removed; one whose process still runs means an older tally holds the store.
 */
async function clearLegacyLock(lockDirectory: string): Promise<void> {
  const stat = await lstat(lockDirectory).catch(() => undefined);
  if (!stat || stat.isDirectory()) return;
  const pid = Number.parseInt((await readFile(lockDirectory, "utf8").catch(() => "")).trim(), 10);
  if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && isProcessAlive(pid)) {
    throw new DirectoryLockedError(lockDirectory, pid);
  }
  await unlink(lockDirectory).catch(() => {});
}

/**
 * Takes the directory's lock: `<directory>/tally.lock/` holds numbered generation files, and the highest number
 * is the current holder. A process takes generation n + 1 only after reading generation n and finding it released
 * or stale, and it creates it with link(2), which fails if the name exists and makes the file visible whole.
 * Taking over a stale lock is therefore atomic: of the processes that read the same stale generation, exactly one
 * creates the next, and the others then read a live holder. A holder is live while its process runs (pid and
 * kernel start time match) and, for this process's own pid, only while this process holds that lock. Nothing
 * needs cleaning up after a crash.
 */
export async function acquireDirectoryLock(directory: string): Promise<{ release(): Promise<void> }> {
  await mkdir(directory, { recursive: true });
  const lockDirectory = path.join(directory, "tally.lock");
  await clearLegacyLock(lockDirectory);
  await mkdir(lockDirectory, { recursive: true });

  const token = randomBytes(16).toString("hex");
  const record: HolderRecord = { pid: process.pid, token, started: processStartTime("self") };
  const candidate = path.join(lockDirectory, `candidate-${token}`);
  await writeFile(candidate, JSON.stringify(record));
  try {
    for (let attempt = 0; attempt < ATTEMPTS_MAX; attempt++) {
      const [top] = await generations(lockDirectory);
      if (top !== undefined) {
        const holder = await readRecord(path.join(lockDirectory, String(top)));
        if (holder === undefined) continue;
        if (isHeld(holder)) throw new DirectoryLockedError(lockDirectory, holder.pid);
      }
      const mine = (top ?? 0) + 1;
      const minePath = path.join(lockDirectory, String(mine));
      heldTokens.add(token);
      try {
        await link(candidate, minePath);
      } catch (error) {
        heldTokens.delete(token);
        if ((error as NodeJS.ErrnoException).code === "EEXIST") continue;
        throw error;
      }
      // A process that read an older generation before it was pruned may have created a lower number; it loses
      // here, at its own check, because this generation is above it. Conversely a higher one means this one lost.
      const [highest] = await generations(lockDirectory);
      if (highest !== mine) {
        heldTokens.delete(token);
        continue;
      }
      await pruneBelow(lockDirectory, mine);
      return releaser(minePath, record);
    }
    throw new DirectoryLockedError(lockDirectory, -1);
  } finally {
    await unlink(candidate).catch(() => {});
  }
}

async function pruneBelow(lockDirectory: string, generation: number): Promise<void> {
  for (const older of await generations(lockDirectory)) {
    if (older < generation) await unlink(path.join(lockDirectory, String(older))).catch(() => {});
  }
}

/** Release marks the generation released (written whole, then renamed over it); the file stays as the top. */
function releaser(generationPath: string, record: HolderRecord): { release(): Promise<void> } {
  let released = false;
  return {
    async release() {
      if (released) return;
      released = true;
      heldTokens.delete(record.token);
      const replacement = `${path.dirname(generationPath)}/released-${record.token}`;
      try {
        await writeFile(replacement, JSON.stringify({ ...record, released: true }));
        await rename(replacement, generationPath);
      } catch {
        // The token is no longer held, so this process already reads the lock as free; another process sees a
        // live pid until this one exits.
        await unlink(replacement).catch(() => {});
      }
    },
  };
}
