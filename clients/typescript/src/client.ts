import createClient, { type Client, type Middleware } from "openapi-fetch";
import type { components, paths } from "./schema.js";

/**
 * A typed tally client: `openapi-fetch` over types generated from tally's OpenAPI document (schema.ts, regenerated
 * with `npm run client:generate`), so every path, body and response is checked by the compiler. Problem responses
 * become a thrown TallyApiError carrying the problem's stable `code`.
 */

export type Problem = components["schemas"]["Problem"];
export type ProblemCode = Problem["code"];

export class TallyApiError extends Error {
  readonly status: number;
  readonly code: ProblemCode;
  readonly request_id: string | undefined;

  constructor(readonly problem: Problem) {
    super(`${problem.code}: ${problem.detail}`);
    this.name = "TallyApiError";
    this.status = problem.status;
    this.code = problem.code;
    this.request_id = problem.request_id;
  }

  /** Worth retrying with the same idempotency keys: the request may not have been (fully) handled. */
  get retryable(): boolean {
    return this.status >= 500 || this.status === 408 || this.status === 429;
  }
}

export interface TallyClientOptions {
  /** The tally base URL, e.g. `http://localhost:8080`. */
  base_url: string;
  /** A service key (`tk_…`), the admin key, or an end-user JWT. */
  token: string;
  /** Per-request time limit; a timed-out write may still have happened, so retry it with the same key. */
  timeout_ms?: number;
  fetch?: typeof fetch;
}

export type TallyClient = Client<paths>;

/** Throws TallyApiError for any problem+json response, so callers only ever see successful data. */
const throwProblems: Middleware = {
  async onResponse({ response }) {
    if (response.ok) return undefined;
    if (!(response.headers.get("content-type") ?? "").includes("problem+json")) {
      throw new TallyApiError({ type: "about:blank", title: response.statusText, status: response.status, detail: await response.text(), code: response.status >= 500 ? "internal_error" : "validation_failed" });
    }
    throw new TallyApiError((await response.json()) as Problem);
  },
};

export function createTallyClient(options: TallyClientOptions): TallyClient {
  const timeout_ms = options.timeout_ms ?? 10_000;
  const base = options.fetch ?? fetch;
  const client = createClient<paths>({
    baseUrl: options.base_url.replace(/\/$/, ""),
    headers: { authorization: `Bearer ${options.token}` },
    fetch: (request: Request) => base(request, { signal: AbortSignal.timeout(timeout_ms) }),
  });
  client.use(throwProblems);
  return client;
}
