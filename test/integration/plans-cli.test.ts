import { afterAll, describe, expect, it } from "vitest";
import { tally } from "../support/cli.js";
import { createHarness, uniqueId } from "../support/harness.js";

const harness = createHarness();
afterAll(() => harness.close());

describe("tally renewals", () => {
  it("previews with --dry-run, writing nothing, then renews; refuses bad arguments with exit 2", async () => {
    const plan = uniqueId("plan");
    expect((await harness.post("/v1/plans", { id: plan, name: "Business", credits: "10000", period: 30 })).status).toBe(201);
    const account = await harness.createAccount();
    // Anchored a day ago (the CLI runs on the wall clock): the current period started then and is due.
    const anchor = new Date(Date.now() - 86_400_000).toISOString();
    expect((await harness.request("PUT", `/v1/accounts/${account}/subscription`, { body: { plan_id: plan, anchor } })).status).toBe(201);
    const environment = { DATABASE_URL: harness.databaseUrl };
    const grants = async () => (await harness.database.query("SELECT 1 FROM entries WHERE account_id = $1 AND type = 'grant'", [account])).length;

    const preview = await tally(["renewals", "--dry-run", "--account", account], environment);
    expect(preview.code, preview.stderr).toBe(0);
    expect(preview.stdout).toContain(`WOULD GRANT ${account} plan ${plan}`);
    expect(preview.stdout).toContain("dry run: processed 1, would grant 1, skipped 0, failed 0");
    expect(await grants()).toBe(0);

    const real = await tally(["renewals", "--plan", plan], environment);
    expect(real.code, real.stderr).toBe(0);
    expect(real.stdout).toContain(`GRANTED ${account} plan ${plan}`);
    expect(real.stdout).toContain("processed 1, granted 1, skipped 0, failed 0");
    expect(await grants()).toBe(1);
    expect((await tally(["renewals", "--plan", plan], environment)).stdout).toContain("processed 0, granted 0");

    const bad = await tally(["renewals", "--limit", "0"], environment);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("--limit must be");
    expect((await tally(["renewals", "--help"])).stdout).toContain("usage: tally renewals");
    // Six process starts, each loading tsx: slow on a loaded machine.
  }, 300_000);
});
