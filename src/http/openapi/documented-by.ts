import { OpenAPIHono, type z } from "@hono/zod-openapi";

/**
 * The OpenAPI schema object that zod-to-openapi makes of `schema`, exactly as the document would show it. For a
 * request field whose check is hand-written (it runs once per row of a batch, where zod costs too much) but whose
 * rules are described by a zod schema: the field is validated by the hand-written check and documented by the zod
 * schema, and a test holds the two to one table of cases. Built once, when the module that needs it loads.
 */
export function openApiSchemaOf(schema: z.ZodType): Record<string, unknown> {
  const generator = new OpenAPIHono();
  generator.openAPIRegistry.register("Documented", schema);
  const document = generator.getOpenAPI31Document({ openapi: "3.1.0", info: { title: "", version: "" } });
  const documented = document.components?.schemas?.Documented;
  if (documented === undefined) throw new Error("zod-to-openapi made no schema of the documented schema");
  return documented as Record<string, unknown>;
}
