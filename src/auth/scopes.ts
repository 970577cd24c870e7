export const SCOPES = [
  "usage:write",
  "credits:write",
  "debits:write",
  "balances:read",
  "history:read",
  "accounts:write",
  "events:read",
  "admin",
  "metrics:read",
  "transfers:write",
] as const;
export type Scope = (typeof SCOPES)[number];

/** What an end user (JWT) may do, and then only on their own account. */
export const USER_SCOPES: ReadonlySet<Scope> = new Set(["balances:read", "history:read"]);

export type Principal =
  | { kind: "service"; key_id: string; scopes: ReadonlySet<Scope> }
  | { kind: "user"; account_id: string };

export function isScope(value: string): value is Scope {
  return (SCOPES as readonly string[]).includes(value);
}
