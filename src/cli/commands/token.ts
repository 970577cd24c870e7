import { parseArgs } from "node:util";
import { SignJWT } from "jose";
import { parseConfig } from "../../config.js";
import { usageError, wantsHelp } from "./usage.js";

const USAGE = `usage: tally token <account id> [--ttl-minutes N]   (default 60, at most 1440)
Prints an HS256 end-user JWT for <account id> signed with JWT_SECRET (with JWT_ISSUER / JWT_AUDIENCE if set), for
trying /v1/me and the end-user routes. Development only: it refuses when NODE_ENV=production, when JWT_SECRET is
not set (a JWKS setup signs its own tokens), or when DATABASE_URL points at a host other than this machine.`;

const LOCAL_HOSTS = new Set(["localhost", "127.0.0.1", "::1", "[::1]"]);

/** Why this setup looks like production, or undefined when minting a token is fine. */
export function productionLooking(environment: Record<string, string | undefined>, database_url: string | undefined): string | undefined {
  if (environment.NODE_ENV === "production") return "NODE_ENV is production";
  if (database_url && !LOCAL_HOSTS.has(new URL(database_url).hostname)) return `DATABASE_URL points at ${new URL(database_url).hostname}, not this machine`;
  return undefined;
}

export async function run(args: string[]): Promise<void> {
  wantsHelp(args, USAGE);
  const { positionals, values } = parseArgs({ args, allowPositionals: true, options: { "ttl-minutes": { type: "string" } } });
  const account_id = positionals[0];
  if (!account_id || !/^[A-Za-z0-9._:@-]{1,128}$/.test(account_id)) usageError(USAGE, "token needs an account id (1-128 characters of A-Z a-z 0-9 . _ : @ -)");
  const ttl_minutes = Number(values["ttl-minutes"] ?? 60);
  if (!Number.isInteger(ttl_minutes) || ttl_minutes < 1 || ttl_minutes > 1440) usageError(USAGE, "--ttl-minutes must be 1-1440");
  const config = parseConfig(process.env);
  const refusal = productionLooking(process.env, config.DATABASE_URL);
  if (refusal) usageError(USAGE, `refusing to mint a development token: ${refusal}`);
  if (!config.JWT_SECRET) usageError(USAGE, "JWT_SECRET is not set (tally verifies end-user tokens with it; set the same value here)");
  let token = new SignJWT({}).setProtectedHeader({ alg: "HS256" }).setSubject(account_id).setIssuedAt().setExpirationTime(`${ttl_minutes}m`);
  if (config.JWT_ISSUER) token = token.setIssuer(config.JWT_ISSUER);
  if (config.JWT_AUDIENCE) token = token.setAudience(config.JWT_AUDIENCE);
  process.stdout.write(`${await token.sign(new TextEncoder().encode(config.JWT_SECRET))}\n`);
}
