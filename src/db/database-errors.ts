import type { ErrorCode } from "../errors.js";
import { isDatabaseUnreachable } from "./pool-gate.js";
import { databaseErrorCode } from "./port.js";

/**
 * The catalogued problem for a database failure that is not the request's fault, or undefined for anything else
 * (which is a 500). Each is temporary, so the answer carries Retry-After, and a write retried with the same
 * idempotency key is applied exactly once.
 */
export function databaseProblem(error: unknown): { code: ErrorCode; detail: string } | undefined {
  if (isDatabaseUnreachable(error)) return { code: "service_unavailable", detail: "the database is not reachable; retry later" };
  switch (databaseErrorCode(error)) {
    case "57014": // query_canceled: statement_timeout (or a cancel sent after the request's deadline)
      return { code: "database_timeout", detail: "a database statement ran past its time limit; retry later" };
    case "25P03": // idle_in_transaction_session_timeout: the session was ended under an open transaction
      return { code: "database_timeout", detail: "the database ended a transaction that stayed idle too long; retry" };
    case "40P01": // deadlock_detected
    case "40001": // serialization_failure
      return { code: "database_conflict", detail: "the database aborted the transaction to resolve a conflict; retry" };
    default:
      return undefined;
  }
}
