import { parseArgs } from "node:util";
import { isScope, SCOPES, type Scope } from "../../auth/scopes.js";
import { wantsHelp } from "./usage.js";

const USAGE = `usage:
  tally keys create --name <name> --scopes <scope,scope,...>   prints the new key once
  tally keys list
  tally keys revoke <key id>
scopes: ${SCOPES.join(", ")}
Uses DATABASE_URL, or the embedded store under DATA_DIR (which must not be open in a running tally: while it runs,
use POST/GET/DELETE /v1/keys with the admin key instead).`;

function fail(message: string): never {
  process.stderr.write(`${message}\n\n${USAGE}\n`);
  process.exit(2);
}

export async function run(args: string[]): Promise<void> {
  wantsHelp(args, USAGE);
  const { positionals, values } = parseArgs({
    args,
    allowPositionals: true,
    options: { name: { type: "string" }, scopes: { type: "string" } },
  });
  const [command, ...rest] = positionals;
  if (command !== "create" && command !== "list" && command !== "revoke") fail("unknown or missing command");

  let scopes: Scope[] = [];
  if (command === "create") {
    const name = values.name?.trim();
    if (!name || name.length > 200) fail("create needs --name (1-200 characters)");
    scopes = [...new Set((values.scopes ?? "").split(",").map((scope) => scope.trim()).filter(Boolean))] as Scope[];
    const unknown = scopes.filter((scope) => !isScope(scope));
    if (scopes.length === 0 || unknown.length > 0) fail(`create needs --scopes from the list below${unknown.length ? `; unknown: ${unknown.join(", ")}` : ""}`);
  }
  if (command === "revoke" && !/^[0-9a-f]{16}$/.test(rest[0] ?? "")) fail("revoke needs the 16-hex-digit key id (see `list`)");

  // Loaded only now, so --help and argument errors answer without loading the database drivers.
  const [{ createServiceKey, listServiceKeys, revokeServiceKey }, { parseConfig }, { openDatabase }] = await Promise.all([
    import("../../auth/service-keys.js"),
    import("../../config.js"),
    import("../../db/open.js"),
  ]);
  const config = parseConfig(process.env);
  const database = await openDatabase(config, { migrate: true, on_progress: (message) => process.stderr.write(`${message}\n`) });
  try {
    if (command === "create") {
      const created = await createServiceKey(database.orm, { name: values.name!.trim(), scopes });
      process.stdout.write(
        `key id: ${created.id}\nscopes: ${scopes.join(", ")}\n\n${created.key}\n\n` +
          "This is the only time the key is shown; tally stores only its hash.\n",
      );
    } else if (command === "list") {
      for (const key of await listServiceKeys(database.orm)) {
        const iso = (time: string) => new Date(time).toISOString();
        const state = key.revoked_at ? `revoked ${iso(key.revoked_at)}` : "active";
        process.stdout.write(`${key.id}  ${key.name}  [${key.scopes.join(",")}]  created ${iso(key.created_at)}  ${state}\n`);
      }
    } else {
      const revoked = await revokeServiceKey(database.orm, rest[0]!);
      if (!revoked) {
        process.stderr.write(`no active key with id ${rest[0]}\n`);
        process.exitCode = 1;
      } else {
        process.stdout.write(`revoked ${rest[0]}; running servers stop accepting it within 5 s\n`);
      }
    }
  } finally {
    await database.close();
  }
}
