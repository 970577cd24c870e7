import postgres from "postgres";

/** A plan node as EXPLAIN (FORMAT JSON) gives it. */
export type PlanNode = Record<string, unknown> & { Plans?: PlanNode[] };

/**
 * Runs `text` with `parameters` as a prepared statement under EXPLAIN ANALYZE and returns the plan PostgreSQL ran:
 * its custom plan (what the first executions of a postgres.js prepared statement get), or with `generic` the
 * generic plan it switches to after a few executions.
 */
export async function explainAnalyze(
  database_url: string,
  text: string,
  parameters: readonly unknown[],
  options: { generic: boolean },
): Promise<PlanNode> {
  // PREPARE goes over the simple protocol (a raw connection): over the extended one, its $n would be taken for
  // parameters of the PREPARE statement itself.
  const raw = postgres(database_url, { max: 1, onnotice: () => {} });
  try {
    return await raw.begin(async (transaction) => {
      if (options.generic) await transaction.unsafe("SET LOCAL plan_cache_mode = force_generic_plan").simple();
      await transaction.unsafe(`PREPARE plan_probe AS ${text}`).simple();
      const [prepared] = await transaction.unsafe<{ types: string[] }[]>(
        "SELECT parameter_types::text[] AS types FROM pg_prepared_statements WHERE name = 'plan_probe'",
      );
      // EXECUTE's arguments as literals: a parameter of an EXPLAIN statement has no type to infer.
      const literal = (value: unknown) => (value === null ? "NULL" : `'${String(value).replaceAll("'", "''")}'`);
      const values = parameters.map((value, index) => `${literal(value)}::${prepared!.types[index]}`).join(", ");
      const [row] = await transaction.unsafe<{ "QUERY PLAN": [{ Plan: PlanNode }] }[]>(
        `EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE plan_probe(${values})`,
      );
      return row!["QUERY PLAN"][0].Plan;
    });
  } finally {
    await raw.end();
  }
}

/**
 * Every node of `plan` that reads `relation` (under an alias `alias` matches, if given; PostgreSQL names a copy of a
 * subquery's scan `chunk_1`, `chunk_2`, …): the rows it returned and discarded in all.
 */
export function relationReads(plan: PlanNode, relation: string, alias?: RegExp): { returned: number; discarded: number }[] {
  const reads: { returned: number; discarded: number }[] = [];
  const visit = (node: PlanNode) => {
    if (node["Relation Name"] === relation && (alias === undefined || alias.test(String(node["Alias"])))) {
      const loops = Number(node["Actual Loops"] ?? 1);
      reads.push({
        returned: Number(node["Actual Rows"]) * loops,
        discarded: (Number(node["Rows Removed by Filter"] ?? 0) + Number(node["Rows Removed by Index Recheck"] ?? 0)) * loops,
      });
    }
    for (const child of node.Plans ?? []) visit(child);
  };
  visit(plan);
  return reads;
}

/**
 * Runs `text` with `parameters` as PostgreSQL runs a prepared statement after it has switched to a generic plan (as
 * postgres.js's prepared statements do after a few executions), under EXPLAIN ANALYZE, and returns the rows each
 * node reading `relation` returned and discarded. A bound written `$n IS NULL OR column < $n` is no index condition
 * in a generic plan: the node then reads and discards every row above the bound, which is what these tests catch.
 */
export async function genericPlanReads(
  database_url: string,
  text: string,
  parameters: readonly unknown[],
  relation: string,
): Promise<{ returned: number; discarded: number }[]> {
  return relationReads(await explainAnalyze(database_url, text, parameters, { generic: true }), relation);
}
