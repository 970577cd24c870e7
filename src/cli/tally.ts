/**
 * The `tally` command (package.json `bin`). Each subcommand is imported only when it runs, so `tally --help` and
 * `tally keys --help` answer at once without loading the database drivers.
 */
const COMMANDS: Record<string, { summary: string; load: () => Promise<{ run(args: string[]): Promise<void> }> }> = {
  migrate: { summary: "apply pending migrations and say which", load: () => import("./commands/migrate.js") },
  keys: { summary: "create, list and revoke service keys (bootstrap; later use POST/GET/DELETE /v1/keys)", load: () => import("./commands/keys.js") },
  verify: { summary: "recompute every balance from its entries and compare with what the API serves", load: () => import("./commands/verify.js") },
  renewals: { summary: "renew due plan subscriptions now, or preview them with --dry-run", load: () => import("./commands/renewals.js") },
  token: { summary: "mint a development end-user JWT from JWT_SECRET (refused in production-looking setups)", load: () => import("./commands/token.js") },
  openapi: { summary: "print the OpenAPI document (no database needed)", load: () => import("./commands/openapi.js") },
};

const HELP = `usage: tally <command> [options]   (npm run tally -- <command> …, or npx tally …)

${Object.entries(COMMANDS)
  .map(([name, command]) => `  ${name.padEnd(8)} ${command.summary}`)
  .join("\n")}

Run \`tally <command> --help\` for its options. Commands use the same environment as the server: DATABASE_URL, or
the embedded store under DATA_DIR (which a running tally holds locked).`;

async function main(): Promise<void> {
  const [name, ...args] = process.argv.slice(2);
  if (name === undefined || name === "--help" || name === "-h" || name === "help") {
    process.stdout.write(`${HELP}\n`);
    return;
  }
  const command = COMMANDS[name];
  if (!command) {
    process.stderr.write(`tally: unknown command "${name}"\n\n${HELP}\n`);
    process.exit(2);
  }
  await (await command.load()).run(args);
}

main().catch((error: unknown) => {
  process.stderr.write(`tally: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
