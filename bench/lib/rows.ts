import { randomBytes } from "node:crypto";
import type postgres from "postgres";
import type { Queryable } from "../../src/db/port.js";

/**
 * The rows the scenarios post, the same for tally and for the baselines: an LLM proxy's usage row with a small
 * amount, a unique idempotency key and the metadata a proxy typically sends.
 */

export const METADATA = { model: "gpt-x", input_tokens: 812, output_tokens: 117 } as const;
export const METADATA_JSON = JSON.stringify(METADATA);

/** A tag unique to this run, so idempotency keys never collide with rows of an earlier measurement. */
export function runTag(): string {
  return randomBytes(4).toString("hex");
}

/** A small amount that varies with n: "0.000001" … "0.000997". */
export function usageAmount(n: number): string {
  return `0.${String((n % 997) + 1).padStart(6, "0")}`;
}

/** A fixed 64-hex-digit request hash for rows the baselines insert directly (tally computes a SHA-256 per row). */
export const FIXED_REQUEST_HASH = "0".repeat(64);

/** tally's port over a bench postgres.js pool: prepared statements, as tally's own port runs them. */
export function queryable(sql: postgres.Sql): Queryable {
  return {
    async query<Row extends object>(text: string, parameters: readonly unknown[] = []) {
      return (await sql.unsafe(text, parameters as postgres.ParameterOrJSON<never>[], { prepare: true })) as unknown as Row[];
    },
  };
}
