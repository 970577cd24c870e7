/** Prints `usage` and exits 0 for --help; otherwise prints the problem and the usage and exits 2. */
export function usageError(usage: string, problem: string): never {
  process.stderr.write(`${problem}\n\n${usage}\n`);
  process.exit(2);
}

export function wantsHelp(args: string[], usage: string): void {
  if (args.includes("--help") || args.includes("-h")) {
    process.stdout.write(`${usage}\n`);
    process.exit(0);
  }
}
