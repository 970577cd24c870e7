import http from "node:http";
import https from "node:https";
import { isIP, type LookupFunction } from "node:net";
import { resolveAllowed } from "./address-guard.js";

/** Response bytes read at most: enough to show why a receiver refused, never a whole page. */
export const RESPONSE_READ_MAX_BYTES = 1024;
/** Characters of that kept in the delivery log. */
export const RESPONSE_EXCERPT_MAX_CHARS = 256;

export interface SendResult {
  /** The HTTP status, or undefined when no response came (timeout, refused address, connection error). */
  status?: number;
  error?: string;
  excerpt?: string;
  duration_ms: number;
}

/**
 * One POST of a signed body. Redirects are not followed (a 3xx is a failure, as Standard Webhooks expects); the
 * whole attempt, connecting included, ends at `timeout_ms`; at most RESPONSE_READ_MAX_BYTES of the answer are read.
 * Every connection goes through a `lookup` that applies the address guard to what DNS returned at that moment.
 */
export function sendWebhook(
  url: URL,
  headers: Record<string, string>,
  body: string,
  options: { timeout_ms: number; allow_private_networks: boolean },
): Promise<SendResult> {
  const started = performance.now();
  const elapsed = () => Math.round(performance.now() - started);
  const checkedLookup: LookupFunction = (hostname, lookupOptions, callback) => {
    resolveAllowed(hostname, options.allow_private_networks).then(
      ({ address, family }) => {
        if (lookupOptions.all) (callback as unknown as (error: null, addresses: { address: string; family: number }[]) => void)(null, [{ address, family }]);
        else callback(null, address, family);
      },
      (error: Error) => callback(error as NodeJS.ErrnoException, "", 0),
    );
  };
  return new Promise<SendResult>((resolve) => {
    let settled = false;
    const finish = (result: Omit<SendResult, "duration_ms">) => {
      if (settled) return;
      settled = true;
      resolve({ ...result, duration_ms: elapsed() });
    };
    const client = url.protocol === "https:" ? https : http;
    // Node does not call `lookup` for an IP literal, so a literal is checked here before connecting.
    const literal = isIP(url.hostname.replace(/^\[|\]$/g, "")) !== 0;
    const checked = literal ? resolveAllowed(url.hostname, options.allow_private_networks) : Promise.resolve();
    checked.then(
      () => {
        const request = client.request(url, {
          method: "POST",
          headers: { ...headers, "content-length": String(Buffer.byteLength(body)) },
          lookup: checkedLookup,
          signal: AbortSignal.timeout(options.timeout_ms),
          agent: false,
        });
        request.on("response", (response) => {
          const chunks: Buffer[] = [];
          let read = 0;
          const done = () => {
            const excerpt = Buffer.concat(chunks).toString("utf8").slice(0, RESPONSE_EXCERPT_MAX_CHARS);
            finish({ status: response.statusCode, ...(excerpt === "" ? {} : { excerpt }) });
            response.destroy();
          };
          response.on("data", (chunk: Buffer) => {
            if (read < RESPONSE_READ_MAX_BYTES) chunks.push(chunk.subarray(0, RESPONSE_READ_MAX_BYTES - read));
            read += chunk.length;
            if (read >= RESPONSE_READ_MAX_BYTES) done();
          });
          response.on("end", done);
          response.on("error", done);
        });
        request.on("error", (error: Error) => finish({ error: describe(error, options.timeout_ms) }));
        request.end(body);
      },
      (error: Error) => finish({ error: describe(error, options.timeout_ms) }),
    );
  });
}

function describe(error: Error, timeout_ms: number): string {
  if (error.name === "TimeoutError" || error.name === "AbortError") return `timed out after ${timeout_ms} ms`;
  const code = (error as NodeJS.ErrnoException).code;
  return (code ? `${code}: ${error.message}` : error.message).slice(0, 300);
}
