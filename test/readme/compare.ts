/**
 * Compares what a README example shows with what the server answered. Values that differ on every run are masked
 * on both sides before comparing: UUIDs, ISO times, request ids, cursors and service-key secrets. Everything else,
 * including amounts, balances and event ids, must match exactly.
 */

export interface Output {
  /** From the status line when the example shows one (`curl -i`); otherwise undefined. */
  status: number | undefined;
  /** Only the headers the example shows, lower-cased. */
  headers: Map<string, string>;
  body: string;
}

const STATUS_LINE = /^HTTP\/[0-9.]+ (\d{3})\b/;

export function parseOutput(text: string): Output {
  const lines = text.split("\n");
  const status = STATUS_LINE.exec(lines[0] ?? "");
  if (!status) return { status: undefined, headers: new Map(), body: text };
  const headers = new Map<string, string>();
  let index = 1;
  for (; index < lines.length && lines[index]!.trim() !== ""; index++) {
    const separator = lines[index]!.indexOf(":");
    headers.set(lines[index]!.slice(0, separator).trim().toLowerCase(), lines[index]!.slice(separator + 1).trim());
  }
  return { status: Number(status[1]), headers, body: lines.slice(index + 1).join("\n") };
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const UUID_INSIDE = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/i;
const UUID_INSIDE_ALL = new RegExp(UUID_INSIDE.source, "gi");
const TIME = /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}(:?\d{2})?)$/;
const SERVICE_KEY = /^tk_[0-9a-f]{80}$/;
const KEY_ID = /^[0-9a-f]{16}$/;
const MASKED_KEYS: Record<string, string> = { request_id: "<request-id>", next_cursor: "<cursor>", key: "<secret>", token: "<token>", secret: "<secret>" };

export function mask(value: unknown, key?: string): unknown {
  if (Array.isArray(value)) return value.map((item) => mask(item));
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([name, inner]) => [name, mask(inner, name)]));
  }
  if (typeof value !== "string") return value;
  if (key !== undefined && MASKED_KEYS[key]) return MASKED_KEYS[key];
  if (UUID.test(value)) return "<uuid>";
  if (TIME.test(value)) return "<time>";
  // Server-made strings that embed an id of the run ("hold capture <id>", "transfer:<id>", a detail naming an entry).
  if (UUID_INSIDE.test(value)) return value.replace(UUID_INSIDE_ALL, "<uuid>");
  if (SERVICE_KEY.test(value)) return "<secret>";
  if (KEY_ID.test(value)) return "<key-id>";
  return value;
}

const MASKED_HEADERS: Record<string, string> = { "x-request-id": "<request-id>", date: "<date>" };

export function maskHeader(name: string, value: string): string {
  return MASKED_HEADERS[name] ?? value;
}

/** A body in a comparable form: JSON masked; SSE and other text line by line, with JSON `data:` lines masked. */
export function normalizeBody(body: string): unknown {
  const trimmed = body.trim();
  try {
    return mask(JSON.parse(trimmed));
  } catch {
    return trimmed
      .split("\n")
      .map((line) => line.replace(/\r$/, ""))
      .map((line) => {
        if (!line.startsWith("data: ")) return line;
        try {
          return `data: ${JSON.stringify(mask(JSON.parse(line.slice(6))))}`;
        } catch {
          return line;
        }
      });
  }
}
