import { mkdir, open, readFile, unlink } from "node:fs/promises";
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
 * Takes `<directory>/tally.lock`, created exclusively (O_EXCL) with this process's pid in it. A lock left behind
 * by a process that no longer exists is taken over; a live holder makes this throw DirectoryLockedError.
 */
export async function acquireDirectoryLock(directory: string): Promise<{ release(): Promise<void> }> {
  await mkdir(directory, { recursive: true });
  const lockPath = path.join(directory, "tally.lock");
  // Two attempts: the second follows the removal of a stale lock. Bounded, so two processes racing to take
  // over the same stale lock cannot loop; one of them wins the exclusive create and the other reports it.
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const handle = await open(lockPath, "wx");
      await handle.writeFile(`${process.pid}\n`);
      await handle.close();
      let released = false;
      return {
        async release() {
          if (released) return;
          released = true;
          await unlink(lockPath).catch(() => {});
        },
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      const holder = Number.parseInt((await readFile(lockPath, "utf8").catch(() => "")).trim(), 10);
      if (Number.isInteger(holder) && holder > 0 && isProcessAlive(holder)) {
        throw new DirectoryLockedError(lockPath, holder);
      }
      await unlink(lockPath).catch(() => {});
    }
  }
  throw new DirectoryLockedError(lockPath, -1);
}
