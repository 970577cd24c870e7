import { acquireDirectoryLock, DirectoryLockedError } from "../../src/db/directory-lock.js";

/**
 * A child process for the directory-lock race test. For each `{ directory }` message it tries the lock and
 * answers `{ won }`; on `{ release: true }` it releases what it holds. It exits when the parent disconnects.
 */
let held: { release(): Promise<void> } | undefined;

process.on("message", async (message: { directory?: string; release?: boolean }) => {
  if (message.release) {
    await held?.release();
    held = undefined;
    process.send?.({ released: true });
    return;
  }
  try {
    held = await acquireDirectoryLock(message.directory!);
    process.send?.({ won: true, pid: process.pid });
  } catch (error) {
    process.send?.({ won: false, pid: process.pid, error: error instanceof DirectoryLockedError ? undefined : String(error) });
  }
});
process.on("disconnect", () => process.exit(0));
process.send?.({ ready: true, pid: process.pid });
