import pino from "pino";

export type Logger = pino.Logger;

/**
 * Structured JSON logs on stdout. Redaction is a second line of defence: request logs never include headers, but
 * should anything log a header or a key, it comes out censored.
 */
export function createLogger(level: string): Logger {
  return pino({
    level,
    base: { service: "tally" },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: {
      paths: ["authorization", "headers.authorization", "*.authorization", "key", "*.key", "token", "*.token", "secret"],
      censor: "[redacted]",
    },
  });
}
