/**
 * The quantities of a usage are checked by hand (quantitiesProblems, once per priced row) and documented by a zod
 * schema (QuantitiesDocumentation, what the OpenAPI document shows). The two must accept and refuse the same values:
 * this table holds them to it, and the request schema must document exactly what the zod schema says.
 */
import { describe, expect, it } from "vitest";
import { quantitiesProblems } from "../../src/ledger/prices/price-rules.js";
import { QuantitiesDocumentation, QuantitiesSchema } from "../../src/http/routes/prices.schemas.js";
import { openApiSchemaOf } from "../../src/http/openapi/documented-by.js";

const names = (count: number) => Object.fromEntries(Array.from({ length: count }, (_, index) => [`q_${"abcdefghijklmnopqrstuvwxyz"[index]}`, 1]));

const ACCEPTED: unknown[] = [
  { input_tokens: 812, output_tokens: 117 },
  { a: 0 },
  { _: 1 },
  { a: -0 },
  { a: Number.MAX_SAFE_INTEGER },
  { ["x".repeat(64)]: 1 },
  { constructor: 1, valueof: 2, prototype: 3 },
  names(16),
  JSON.parse('{"input_tokens": 1e3}'),
];

/** The value, the field the hand-written check names, and the field zod names when it names another. */
const REFUSED: [unknown, string, string?][] = [
  [{}, ""],
  [names(17), ""],
  [{ ...names(17), A: -1 }, "", "A"], // the count first; zod's refinements run only on a record without bad names
  [null, ""],
  [undefined, ""],
  ["input_tokens", ""],
  [812, ""],
  [[], ""],
  [[1, 2], ""],
  [{ A: 1 }, "A"],
  [{ "": 1 }, ""],
  [{ "input-tokens": 1 }, "input-tokens"],
  [{ input_tokens2: 1 }, "input_tokens2"],
  [{ ["x".repeat(65)]: 1 }, "x".repeat(65)],
  [{ "é": 1 }, "é"],
  [{ a: -1 }, "a"],
  [{ a: 1.5 }, "a"],
  [{ a: 2 ** 53 }, "a"],
  [{ a: "1" }, "a"],
  [{ a: null }, "a"],
  [{ a: true }, "a"],
  [{ a: {} }, "a"],
  [{ a: [1] }, "a"],
  [{ a: Number.NaN }, "a"],
  [{ a: Number.POSITIVE_INFINITY }, "a"],
  [{ a: 1, B: 1 }, "B"],
  [{ a: 1, b: -1 }, "b"],
];

/**
 * The one difference, deliberate: JSON.parse keeps `__proto__` as an own key, and a zod record cannot see it (its
 * output is built by assignment, which drops it). Alone it is refused by both (zod finds no names); beside other
 * names zod accepted it and the quantity was silently ignored. The hand-written check refuses both.
 */
const PROTO_ALONE = JSON.parse('{"__proto__": 1}') as unknown;
const PROTO_BESIDE = JSON.parse('{"input_tokens": 5, "__proto__": 1}') as unknown;

function fieldsOf(issues: readonly { path: readonly PropertyKey[] }[]): string[] {
  return issues.map((issue) => issue.path.map(String).join("."));
}

describe("quantities: the hand-written check and the documented zod schema agree", () => {
  it.each(ACCEPTED.map((value) => [JSON.stringify(value), value]))("both accept %s", (_, value) => {
    expect(quantitiesProblems(value)).toEqual([]);
    expect(QuantitiesDocumentation.safeParse(value).success).toBe(true);
    const checked = QuantitiesSchema.safeParse(value);
    expect(checked.success).toBe(true);
    // The value passes through as sent: the same keys in the same order.
    expect(checked.data).toEqual(value);
  });

  it.each(REFUSED.map(([value, field, zodField]) => [JSON.stringify(value) ?? String(value), value, field, zodField ?? field]))("both refuse %s", (_, value, field, zodField) => {
    const problems = quantitiesProblems(value);
    expect(problems.length).toBeGreaterThan(0);
    const documented = QuantitiesDocumentation.safeParse(value);
    expect(documented.success).toBe(false);
    // The field the hand-written check names is one the zod schema names too, with the same message when zod says
    // one thing only (zod may say more: every bad name beside a count over 16, two messages for 2^53).
    const checked = QuantitiesSchema.safeParse(value);
    expect(checked.success).toBe(false);
    expect(fieldsOf(checked.error!.issues)).toContain(field);
    if (documented.error!.issues.length === 1) {
      expect(fieldsOf(documented.error!.issues)).toEqual([zodField]);
      // zod's own messages for a wrong type or key are generic; the hand-written check says what is expected.
      const [issue] = documented.error!.issues;
      if (issue!.code !== "invalid_type" && issue!.code !== "invalid_key" && zodField === field) {
        expect(checked.error!.issues.map((problem) => problem.message)).toEqual([issue!.message]);
      }
    }
  });

  it("refuses a __proto__ key, alone or beside other names; the zod schema refuses it only alone (and drops it otherwise)", () => {
    for (const value of [PROTO_ALONE, PROTO_BESIDE]) {
      expect(QuantitiesSchema.safeParse(value).error?.issues.map((issue) => issue.path)).toEqual([["__proto__"]]);
    }
    expect(QuantitiesDocumentation.safeParse(PROTO_ALONE).success).toBe(false);
    expect(QuantitiesDocumentation.safeParse(PROTO_BESIDE).data).toEqual({ input_tokens: 5 });
  });

  it("the request schema is documented as the zod schema is, limits included", () => {
    const documented = openApiSchemaOf(QuantitiesDocumentation);
    expect(openApiSchemaOf(QuantitiesSchema)).toEqual(documented);
    expect(documented).toMatchObject({
      type: "object",
      additionalProperties: { type: "integer", minimum: 0, maximum: Number.MAX_SAFE_INTEGER },
      minProperties: 1,
      maxProperties: 16,
    });
  });
});
