import { afterAll, describe, expect, it } from "vitest";
import { productionLooking } from "../../src/cli/commands/token.js";
import { JwtVerifier } from "../../src/auth/jwt.js";
import { tally } from "../support/cli.js";
import { createHarness, uniqueId } from "../support/harness.js";

const harness = createHarness();
afterAll(() => harness.close());

describe("the tally command", () => {
  it("answers --help for itself and its subcommands, and refuses an unknown one with exit 2", async () => {
    expect((await tally(["--help"])).stdout).toMatch(/migrate[\s\S]*keys[\s\S]*verify[\s\S]*token/);
    const keys = await tally(["keys", "--help"]);
    expect(keys.code).toBe(0);
    expect(keys.stdout).toContain("tally keys create --name");
    expect((await tally(["nope"])).code).toBe(2);
  });

  it("token mints a JWT tally accepts, and refuses production-looking setups", async () => {
    const secret = "cli-test-jwt-secret-0123456789abcdef0123";
    const minted = await tally(["token", "org_42", "--ttl-minutes", "5"], { JWT_SECRET: secret, JWT_AUDIENCE: "tally-dev" });
    expect(minted.code).toBe(0);
    const verifier = JwtVerifier.fromOptions({ secret, jwks_url: undefined, issuer: undefined, audience: "tally-dev" })!;
    expect(await verifier.verify(minted.stdout.trim())).toBe("org_42");
    const refused = await tally(["token", "org_42"], { JWT_SECRET: secret, NODE_ENV: "production" });
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain("refusing to mint a development token: NODE_ENV is production");
    expect(productionLooking({}, "postgres://tally@db.internal:5432/tally")).toMatch(/db.internal/);
    expect(productionLooking({}, "postgres://postgres@127.0.0.1:5432/x")).toBeUndefined();
    expect((await tally(["token", "org_42"], {})).stderr).toContain("JWT_SECRET is not set");
  });

  it("verify finds every balance matching its entries, and exits 1 naming an account whose checkpoint is wrong", async () => {
    const account = await harness.createAccount(uniqueId("verify"));
    await harness.post("/v1/credits", { account_id: account, type: "grant", amount: "3", idempotency_key: "g" });
    const environment = { DATABASE_URL: harness.databaseUrl };
    const clean = await tally(["verify"], environment);
    expect(clean.stdout, clean.stderr).toMatch(/all \d+ balances match their entries/);
    expect(clean.code).toBe(0);
    // A corrupted checkpoint (what a folding bug would leave): the API would serve 1 more than the entries hold.
    await harness.database.query(
      "INSERT INTO balance_checkpoints (account_id, balance, xid_boundary) VALUES ($1, 1, '0'::xid8) ON CONFLICT (account_id) DO UPDATE SET balance = balance_checkpoints.balance + 1",
      [account],
    );
    const dirty = await tally(["verify"], environment);
    expect(dirty.code).toBe(1);
    expect(dirty.stdout).toContain(`DIFFERENT ${account}: served 4, entries sum to 3`);
  });
});
