/** A one-line progress bar for long CLI commands, redrawn with `\r` on a terminal. */
export function progressBar(done: number, total: number, unit: string): string {
  const width = 30;
  const filled = total === 0 ? width : Math.min(width, Math.round((done / total) * width));
  return `[${"#".repeat(filled)}${"-".repeat(width - filled)}] ${done}/${total} ${unit}`;
}
