import http from "node:http";

/**
 * The load generator's HTTP client: node:http over a keep-alive agent with as many sockets as there are
 * concurrent clients, to 127.0.0.1 only. node:http rather than fetch because the load generator shares the two
 * cores with tally and PostgreSQL, and fetch (undici through the WHATWG streams layer) spends noticeably more CPU
 * per request; every CPU cycle the client burns is one tally cannot use.
 */

export interface HttpResponse {
  status: number;
  body: string;
  headers: http.IncomingHttpHeaders;
}

export class HttpError extends Error {
  constructor(
    readonly method: string,
    readonly path: string,
    readonly status: number,
    readonly body: string,
  ) {
    super(`${method} ${path} answered ${status}: ${body.slice(0, 300)}`);
  }
}

export class HttpClient {
  private readonly agent: http.Agent;

  constructor(
    readonly port: number,
    readonly token: string,
    sockets: number,
  ) {
    this.agent = new http.Agent({ keepAlive: true, maxSockets: sockets, maxFreeSockets: sockets, scheduling: "lifo" });
  }

  request(method: string, path: string, body?: string): Promise<HttpResponse> {
    return new Promise((resolve, reject) => {
      const headers: http.OutgoingHttpHeaders = { authorization: `Bearer ${this.token}` };
      if (body !== undefined) {
        headers["content-type"] = "application/json";
        headers["content-length"] = Buffer.byteLength(body);
      }
      const request = http.request(
        { host: "127.0.0.1", port: this.port, method, path, headers, agent: this.agent },
        (response) => {
          const chunks: Buffer[] = [];
          response.on("data", (chunk: Buffer) => chunks.push(chunk));
          response.on("end", () =>
            resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8"), headers: response.headers }),
          );
          response.on("error", reject);
        },
      );
      request.on("error", reject);
      request.setTimeout(60_000, () => request.destroy(new Error(`${method} ${path}: no answer within 60 s`)));
      if (body !== undefined) request.write(body);
      request.end();
    });
  }

  /** A request that must answer one of `expected`; anything else throws HttpError. */
  async expect(method: string, path: string, body: string | undefined, expected: readonly number[]): Promise<HttpResponse> {
    const response = await this.request(method, path, body);
    if (!expected.includes(response.status)) throw new HttpError(method, path, response.status, response.body);
    return response;
  }

  async json<T>(method: string, path: string, body?: unknown, expected: readonly number[] = [200, 201]): Promise<T> {
    const response = await this.expect(method, path, body === undefined ? undefined : JSON.stringify(body), expected);
    return JSON.parse(response.body) as T;
  }

  close(): void {
    this.agent.destroy();
  }
}

/**
 * A Server-Sent Events reader on its own socket. Calls `on_message` with the receipt time (performance.now())
 * of every message as soon as its block is complete.
 */
export function openEventStream(
  port: number,
  token: string,
  path: string,
  on_message: (message: { id?: string; event?: string; data: string }, received_at: number) => void,
): Promise<{ close(): void }> {
  return new Promise((resolve, reject) => {
    const request = http.request(
      { host: "127.0.0.1", port, method: "GET", path, headers: { authorization: `Bearer ${token}`, accept: "text/event-stream" } },
      (response) => {
        if (response.statusCode !== 200) {
          let text = "";
          response.on("data", (chunk: Buffer) => (text += chunk.toString("utf8")));
          response.on("end", () => reject(new HttpError("GET", path, response.statusCode ?? 0, text)));
          return;
        }
        let buffer = "";
        response.setEncoding("utf8");
        response.on("data", (chunk: string) => {
          const received_at = performance.now();
          buffer += chunk;
          for (let boundary = buffer.indexOf("\n\n"); boundary >= 0; boundary = buffer.indexOf("\n\n")) {
            const block = buffer.slice(0, boundary);
            buffer = buffer.slice(boundary + 2);
            const message: { id?: string; event?: string; data: string } = { data: "" };
            let comment = true;
            for (const line of block.split("\n")) {
              if (line.startsWith(":")) continue;
              comment = false;
              const colon = line.indexOf(":");
              const field = colon < 0 ? line : line.slice(0, colon);
              const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
              if (field === "id") message.id = value;
              else if (field === "event") message.event = value;
              else if (field === "data") message.data += value;
            }
            if (!comment) on_message(message, received_at);
          }
        });
        response.on("error", () => {});
        resolve({ close: () => request.destroy() });
      },
    );
    request.on("error", reject);
    request.end();
  });
}
