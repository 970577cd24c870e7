import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";

export interface ReceivedWebhook {
  headers: IncomingHttpHeaders;
  body: string;
  /** The parsed body: Standard Webhooks' { type, timestamp, data }. */
  json: { type: string; timestamp: string; data: { id: string; type: string; account_id: string; balance: string; time: string } };
  status: number;
  received_at_ms: number;
}

/**
 * A local HTTP receiver for webhook tests: records every request and answers with what `respond` decides (a status,
 * or a promise of one, so a test can hold requests open).
 */
export interface WebhookReceiver {
  url: string;
  received: ReceivedWebhook[];
  respond: (request: Omit<ReceivedWebhook, "status">) => number | Promise<number>;
  /** Requests being answered right now, and the most there ever were at once. */
  in_flight: number;
  in_flight_max: number;
  close(): Promise<void>;
}

export async function startWebhookReceiver(path = "/hook"): Promise<WebhookReceiver> {
  const receiver: WebhookReceiver = {
    url: "",
    received: [],
    respond: () => 200,
    in_flight: 0,
    in_flight_max: 0,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
  const server: Server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("end", async () => {
      receiver.in_flight++;
      receiver.in_flight_max = Math.max(receiver.in_flight_max, receiver.in_flight);
      const body = Buffer.concat(chunks).toString("utf8");
      const entry = { headers: request.headers, body, json: JSON.parse(body), received_at_ms: Date.now() };
      let status = 500;
      try {
        status = await receiver.respond(entry);
      } finally {
        receiver.in_flight--;
        receiver.received.push({ ...entry, status });
        response.writeHead(status, { "content-type": "text/plain" }).end(status >= 300 ? `no thanks (${status})` : "ok");
      }
    });
  });
  server.keepAliveTimeout = 1;
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  receiver.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}${path}`;
  const close = receiver.close;
  receiver.close = () => {
    server.closeAllConnections();
    return close();
  };
  return receiver;
}
