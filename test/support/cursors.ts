/**
 * Cursors as a client sees them: `<payload>.<mac>`, the payload base64url JSON `{ e: expiry, d: data }`. Tests read
 * the payload to learn a walk's snapshot, and forge payloads to prove the server refuses them.
 */

/** The data a cursor carries (readable by anyone holding it; trusted by the server only when the mac matches). */
export function cursorData(cursor: string): Record<string, unknown> {
  const [payload] = cursor.split(".");
  return (JSON.parse(Buffer.from(payload!, "base64url").toString("utf8")) as { d: Record<string, unknown> }).d;
}

/** The cursor with its data changed by `change` and the original mac kept: what an attacker can produce. */
export function forgeCursor(cursor: string, change: (data: Record<string, unknown>) => Record<string, unknown>): string {
  const [payload, mac] = cursor.split(".");
  const decoded = JSON.parse(Buffer.from(payload!, "base64url").toString("utf8")) as { e: number; d: Record<string, unknown> };
  return `${Buffer.from(JSON.stringify({ ...decoded, d: change(decoded.d) })).toString("base64url")}.${mac}`;
}
