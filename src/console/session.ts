import { createHash } from "node:crypto";
import { timingSafeEqual } from "node:crypto";
import type { Context } from "hono";
import { getCookie, setCookie, deleteCookie } from "hono/cookie";
import type { Principal, Scope } from "../auth/scopes.js";
import { serviceKeyReference, tokenHash } from "../auth/service-keys.js";
import { resolvePrincipal, type Authenticators } from "../http/auth.js";
import type { Signer } from "../signing/signer.js";

/**
 * A console session is a cookie holding a signed token (src/signing/signer.ts) that references the credential, never
 * the credential itself: the SHA-256 of the admin key, a service key's id and the SHA-256 of its secret (what the
 * database stores), or an end user's account id. Every request re-resolves it against the same verifiers the API
 * uses, so a revoked key ends its sessions within the key cache's lifetime and a session never holds more scopes
 * than its key has now.
 */
export const SESSION_COOKIE = "tally_console";
export const SESSION_LIFETIME_MS = 8 * 60 * 60 * 1000;
/** An end-user JWT usually lives shorter; the read-only session it opens is kept short too. */
export const USER_SESSION_LIFETIME_MS = 60 * 60 * 1000;
export const FORM_TOKEN_LIFETIME_MS = 60 * 60 * 1000;
const SESSION_PURPOSE = "console-session";
const FORM_PURPOSE = "console-form";

type SessionData = { k: "admin"; h: string } | { k: "service"; id: string; h: string } | { k: "user"; a: string };

export interface Session {
  principal: Principal;
  /** Binds form tokens to this session: the hash of the cookie value. */
  binding: string;
}

function sha256Hex(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

function sameHex(left: string, right: string): boolean {
  const a = Buffer.from(left, "hex");
  const b = Buffer.from(right, "hex");
  return a.length === 32 && b.length === 32 && timingSafeEqual(a, b);
}

/**
 * Served over HTTPS, directly or behind a proxy that terminates TLS and says so. Trusting the header here is safe:
 * it can only add `Secure`, and a Secure cookie over plain HTTP is merely not sent back.
 */
function isHttps(c: Context): boolean {
  return new URL(c.req.url).protocol === "https:" || c.req.header("x-forwarded-proto")?.split(",")[0]?.trim() === "https";
}

/** Verifies a key or token exactly as the API does and, if it is valid, sets the session cookie. */
export async function signIn(c: Context, deps: { authenticators: Authenticators; signer: Signer }, credential: string): Promise<Principal | undefined> {
  const principal = await resolvePrincipal(deps.authenticators, credential);
  if (!principal) return undefined;
  let data: SessionData;
  if (principal.kind === "user") data = { k: "user", a: principal.account_id };
  else if (principal.key_id === "admin") data = { k: "admin", h: tokenHash(credential) };
  else {
    const reference = serviceKeyReference(credential);
    if (!reference) return undefined;
    data = { k: "service", id: reference.id, h: reference.secret_hash };
  }
  const lifetime_ms = principal.kind === "user" ? USER_SESSION_LIFETIME_MS : SESSION_LIFETIME_MS;
  const token = await deps.signer.sign(SESSION_PURPOSE, "", data, lifetime_ms);
  setCookie(c, SESSION_COOKIE, token, {
    httpOnly: true,
    secure: isHttps(c),
    sameSite: "Strict",
    path: "/console",
    maxAge: Math.floor(lifetime_ms / 1000),
  });
  return principal;
}

export function signOut(c: Context): void {
  deleteCookie(c, SESSION_COOKIE, { path: "/console", secure: isHttps(c) });
}

/** The session's principal as of now, or undefined (no cookie, forged, expired, or the key revoked). */
export async function readSession(c: Context, deps: { authenticators: Authenticators; signer: Signer }): Promise<Session | undefined> {
  const token = getCookie(c, SESSION_COOKIE);
  if (token === undefined) return undefined;
  const verified = await deps.signer.verify(SESSION_PURPOSE, "", token);
  if (!verified.ok) return undefined;
  const data = verified.data as SessionData;
  const binding = sha256Hex(token);
  if (data.k === "admin") {
    const admin_key = deps.authenticators.admin_key;
    if (admin_key === undefined || typeof data.h !== "string" || !sameHex(data.h, tokenHash(admin_key))) return undefined;
    return { principal: { kind: "service", key_id: "admin", scopes: new Set<Scope>(["admin"]) }, binding };
  }
  if (data.k === "service" && typeof data.id === "string" && typeof data.h === "string") {
    const key = await deps.authenticators.service_keys.verifyHash(data.id, data.h);
    return key ? { principal: { kind: "service", key_id: key.key_id, scopes: key.scopes }, binding } : undefined;
  }
  if (data.k === "user" && typeof data.a === "string" && deps.authenticators.jwt) {
    return { principal: { kind: "user", account_id: data.a }, binding };
  }
  return undefined;
}

/** A token every state-changing form carries: signed, bound to this session, expiring. */
export function formToken(signer: Signer, session: Session): Promise<string> {
  return signer.sign(FORM_PURPOSE, session.binding, {}, FORM_TOKEN_LIFETIME_MS);
}

export async function checkFormToken(signer: Signer, session: Session, token: unknown): Promise<boolean> {
  if (typeof token !== "string") return false;
  return (await signer.verify(FORM_PURPOSE, session.binding, token)).ok;
}
