import type { IncomingMessage, Server, ServerResponse } from "node:http";
import type { Socket } from "node:net";

/** Shared between the server and the routes: whether the process has begun shutting down. */
export interface Lifecycle {
  readonly draining: boolean;
}

export interface Drainer extends Lifecycle {
  /**
   * Starts draining: every response from now on carries `Connection: close` (so keep-alive clients move to
   * another instance), no new connection is accepted, idle keep-alive sockets are closed, and each busy socket is
   * closed once its last response is sent. Resolves true when every connection has closed, false if some were
   * still open after `timeout_ms` (they are then destroyed).
   */
  drain(timeout_ms: number): Promise<boolean>;
  /** Requests being served now. */
  readonly in_flight: number;
}

/** Tracks connections and in-flight responses of `server` so that a shutdown can drain it. */
export function trackForDrain(server: Server): Drainer {
  const busy = new Map<Socket, number>();
  const responses = new Set<ServerResponse>();
  let draining = false;

  server.on("connection", (socket: Socket) => {
    busy.set(socket, 0);
    socket.once("close", () => busy.delete(socket));
  });
  server.on("request", (request: IncomingMessage, response: ServerResponse) => {
    const socket = request.socket;
    busy.set(socket, (busy.get(socket) ?? 0) + 1);
    responses.add(response);
    if (draining) response.setHeader("Connection", "close");
    response.once("close", () => {
      responses.delete(response);
      const left = (busy.get(socket) ?? 1) - 1;
      busy.set(socket, left);
      // A response whose headers went out before the drain began kept the connection alive; end it here.
      if (draining && left === 0) closeSoon(socket);
    });
  });

  return {
    get draining() {
      return draining;
    },
    get in_flight() {
      return responses.size;
    },
    drain(timeout_ms) {
      draining = true;
      for (const response of responses) {
        if (!response.headersSent) response.setHeader("Connection", "close");
      }
      return new Promise<boolean>((resolve) => {
        const force = setTimeout(() => {
          server.closeAllConnections();
          resolve(false);
        }, timeout_ms);
        force.unref();
        // Stops accepting and (Node 19+) closes the sockets that wait idle between requests.
        server.close(() => {
          clearTimeout(force);
          resolve(true);
        });
        for (const [socket, count] of busy) if (count === 0) closeSoon(socket);
      });
    },
  };
}

/** Sends what is buffered, then closes; a client that never answers the FIN is cut off after a second. */
function closeSoon(socket: Socket): void {
  socket.end();
  socket.setTimeout(1_000, () => socket.destroy());
}
