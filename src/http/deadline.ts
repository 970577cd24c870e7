import type { MiddlewareHandler } from "hono";
import { HTTPException } from "hono/http-exception";
import { runCancellable } from "../db/pool-gate.js";

/**
 * Answers 504 when a request runs past `timeout_ms`, and cancels what it has not started yet: the request's work
 * runs with an AbortSignal that fires at the deadline, so a wait for a database connection made on its behalf is
 * abandoned instead of taking a connection for an answer nobody will read.
 */
export function deadline(timeout_ms: number): MiddlewareHandler {
  return async (_c, next) => {
    const controller = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        controller.abort();
        reject(new HTTPException(504, { message: `the request did not finish within ${timeout_ms} ms` }));
      }, timeout_ms);
    });
    try {
      await Promise.race([runCancellable(controller.signal, next), expired]);
    } finally {
      clearTimeout(timer);
    }
  };
}
