import type { Context, MiddlewareHandler } from "hono";
import { USER_SCOPES, type Principal, type Scope } from "../auth/scopes.js";
import { FAILED_AUTHENTICATION_DEFAULTS, FailedAuthentications } from "../auth/failed-authentications.js";
import type { JwtVerifier } from "../auth/jwt.js";
import { looksLikeServiceKey, matchesAdminKey, type ServiceKeyVerifier } from "../auth/service-keys.js";
import { TallyError } from "../errors.js";
import type { AppEnv } from "./env.js";

export interface Authenticators {
  service_keys: ServiceKeyVerifier;
  jwt: JwtVerifier | undefined;
  admin_key: string | undefined;
  /** Per client address; defaults to FAILED_AUTHENTICATION_DEFAULTS. */
  failed_authentications?: FailedAuthentications;
}

/**
 * The peer address of the connection (@hono/node-server puts the node request in the environment). Requests that
 * do not come over a socket (in-process calls) have none and are not throttled.
 */
function clientAddress(c: Context<AppEnv>): string | undefined {
  const environment = c.env as { incoming?: { socket?: { remoteAddress?: string } } } | undefined;
  return environment?.incoming?.socket?.remoteAddress;
}

// The scheme name is case-insensitive (RFC 9110, section 11.1).
const BEARER = /^Bearer ([\x21-\x7e]{1,4096})$/i;

/** Resolves the caller from `Authorization: Bearer …`: the admin key, a service key (`tk_…`) or an end-user JWT. */
export function authenticate(authenticators: Authenticators): MiddlewareHandler<AppEnv> {
  const failures = authenticators.failed_authentications ?? new FailedAuthentications(FAILED_AUTHENTICATION_DEFAULTS);
  return async (c, next) => {
    const match = BEARER.exec(c.req.header("authorization") ?? "");
    if (!match) throw new TallyError("unauthorized", "send Authorization: Bearer <service key or token>");
    const token = match[1]!;
    const address = clientAddress(c);
    const throttled_s = address === undefined ? 0 : failures.throttledFor(address);
    const throttle = () =>
      new TallyError("too_many_failed_authentications", `too many failed authentications from this address; retry in ${throttled_s} s`, {
        retry_after_s: throttled_s,
      });
    const principal = await resolve(authenticators, token, throttled_s > 0);
    if (principal === "throttled") throw throttle();
    if (!principal) {
      if (address !== undefined) failures.record(address);
      throw new TallyError("unauthorized", "the credentials are not valid");
    }
    c.set("principal", principal);
    await next();
  };
}

/** The principal a bearer token stands for, or undefined; the console's sign-in resolves tokens as the API does. */
export async function resolvePrincipal(authenticators: Authenticators, token: string): Promise<Principal | undefined> {
  const principal = await resolve(authenticators, token, false);
  return principal === "throttled" ? undefined : principal;
}

/**
 * The admin key, a service key or an end-user JWT. A throttled caller (too many failed authentications) is still
 * served for credentials this process already knows; anything that would need a lookup answers "throttled".
 */
async function resolve(authenticators: Authenticators, token: string, throttled: boolean): Promise<Principal | undefined | "throttled"> {
  if (matchesAdminKey(token, authenticators.admin_key)) {
    return { kind: "service", key_id: "admin", scopes: new Set<Scope>(["admin"]) };
  }
  if (looksLikeServiceKey(token)) {
    const key = throttled ? await authenticators.service_keys.verifyKnown(token) : await authenticators.service_keys.verify(token);
    if (key === "needs_refresh") return "throttled";
    return key ? { kind: "service", key_id: key.key_id, scopes: key.scopes } : undefined;
  }
  if (authenticators.jwt) {
    if (throttled) return "throttled";
    const account_id = await authenticators.jwt.verify(token);
    return account_id ? { kind: "user", account_id } : undefined;
  }
  return undefined;
}

/** Whether the principal holds `scope` (admin implies every scope; an end user holds only the read scopes). */
export function allows(principal: Principal, scope: Scope): boolean {
  if (principal.kind === "user") return USER_SCOPES.has(scope);
  return principal.scopes.has(scope) || principal.scopes.has("admin");
}

/** Route guard: the caller must hold `scope` (an end user holds only the read scopes, on their own account). */
export function requireScope(scope: Scope): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    if (!allows(c.get("principal"), scope)) {
      throw new TallyError("forbidden", `this request needs the ${scope} scope`);
    }
    await next();
  };
}

/** Route guard for listings that span accounts, which end-user tokens never see. */
export function requireServiceScope(scope: Scope): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const principal = c.get("principal");
    if (principal.kind === "user" || !allows(principal, scope)) {
      throw new TallyError("forbidden", `this request needs a service key with the ${scope} scope`);
    }
    await next();
  };
}

/** An end user may only touch their own account; a service key with the route's scope may touch any. */
export function authorizeAccounts(c: Context<AppEnv>, account_ids: readonly string[]): void {
  const principal = c.get("principal");
  if (principal.kind === "user" && account_ids.some((id) => id !== principal.account_id)) {
    throw new TallyError("forbidden", "an end-user token can only access its own account");
  }
}

/** The caller's own account, for the /v1/me routes, which only end-user tokens have. */
export function ownAccountId(c: Context<AppEnv>): string {
  const principal = c.get("principal");
  if (principal.kind !== "user") {
    throw new TallyError("forbidden", "/v1/me needs an end-user token; service keys have no account of their own");
  }
  return principal.account_id;
}
