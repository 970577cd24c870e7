import { OpenAPIHono } from "@hono/zod-openapi";
import type { z } from "zod";
import { TallyError } from "../errors.js";
import type { AppEnv } from "./env.js";

/** `["entries", 3, "amount"]` → `entries[3].amount`. */
function fieldName(path: readonly PropertyKey[]): string {
  return path.reduce<string>(
    (name, part) => (typeof part === "number" ? `${name}[${part}]` : name === "" ? String(part) : `${name}.${String(part)}`),
    "",
  );
}

export function validationErrors(error: z.ZodError, target: string): { field: string; message: string }[] {
  return error.issues.flatMap((issue) => {
    if (issue.code === "unrecognized_keys") {
      return issue.keys.map((key) => ({ field: fieldName([...issue.path, key]) || target, message: "is not a known field" }));
    }
    return [{ field: fieldName(issue.path) || target, message: issue.message }];
  });
}

/** A router whose request validation failures become 400 `validation_failed` problems that name each field. */
export function createRouter(): OpenAPIHono<AppEnv> {
  return new OpenAPIHono<AppEnv>({
    defaultHook: (result) => {
      if (!result.success) {
        const errors = validationErrors(result.error, result.target);
        const summary = errors
          .slice(0, 5)
          .map((error) => `${error.field}: ${error.message}`)
          .join("; ");
        throw new TallyError("validation_failed", summary, { errors: errors.slice(0, 100) });
      }
    },
  });
}
