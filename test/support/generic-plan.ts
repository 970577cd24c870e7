import postgres from "postgres";

/** A plan node as EXPLAIN (FORMAT JSON) gives it. */
type PlanNode = Record<string, unknown> & { Plans?: PlanNode[] };

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
  // PREPARE goes over the simple protocol (a raw connection): over the extended one, its $n would be taken for
  // parameters of the PREPARE statement itself.
  const raw = postgres(database_url, { max: 1, onnotice: () => {} });
  try {
    const plan = await raw.begin(async (transaction) => {
      await transaction.unsafe("SET LOCAL plan_cache_mode = force_generic_plan").simple();
      await transaction.unsafe(`PREPARE generic_plan_probe AS ${text}`).simple();
      const [prepared] = await transaction.unsafe<{ types: string[] }[]>(
        "SELECT parameter_types::text[] AS types FROM pg_prepared_statements WHERE name = 'generic_plan_probe'",
      );
      // EXECUTE's arguments as literals: a parameter of an EXPLAIN statement has no type to infer.
      const literal = (value: unknown) => (value === null ? "NULL" : `'${String(value).replaceAll("'", "''")}'`);
      const values = parameters.map((value, index) => `${literal(value)}::${prepared!.types[index]}`).join(", ");
      const [row] = await transaction.unsafe<{ "QUERY PLAN": [{ Plan: PlanNode }] }[]>(
        `EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE generic_plan_probe(${values})`,
      );
      return row!["QUERY PLAN"][0].Plan;
    });
    const reads: { returned: number; discarded: number }[] = [];
    const visit = (node: PlanNode) => {
      if (node["Relation Name"] === relation) {
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
  } finally {
    await raw.end();
  }
}
