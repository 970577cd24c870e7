/**
 * Query parameters of the history routes that PostgreSQL or the date arithmetic cannot take (a NUL in a search,
 * year 0000, offsets beyond any real zone, year 0001 ranges on stats) are 400 validation_failed on every route that
 * takes them, never a 500; the edges that are valid are answered.
 */
import { SignJWT } from "jose";
import { afterAll, describe, expect, it } from "vitest";
import { JWT_AUDIENCE, JWT_SECRET, createHarness, type ApiResponse } from "../support/harness.js";

const harness = createHarness({ pool_max: 4 });
afterAll(() => harness.close());

function userToken(account: string): Promise<string> {
  return new SignJWT({})
    .setProtectedHeader({ alg: "HS256" })
    .setSubject(account)
    .setAudience(JWT_AUDIENCE)
    .setExpirationTime("5m")
    .sign(new TextEncoder().encode(JWT_SECRET));
}

function expectValidationFailed(response: ApiResponse, label: string): void {
  expect(response.status, `${label}: ${JSON.stringify(response.body)}`).toBe(400);
  expect(response.body.code, label).toBe("validation_failed");
}

describe("history query parameters PostgreSQL cannot take", () => {
  it("are 400 validation_failed on every history route, and the valid edges are answered", async () => {
    const account = await harness.createAccount();
    expect((await harness.post("/v1/credits", { account_id: account, type: "grant", amount: "1", idempotency_key: "g" })).status).toBe(201);
    const user = await userToken(account);
    const listings: [string, string | undefined][] = [
      [`/v1/accounts/${account}/entries?`, undefined],
      ["/v1/me/entries?", user],
      ["/v1/entries?", undefined],
    ];
    const refused = [
      "search=%00",
      "search=a%00b",
      "from=0000-01-01T00:00:00Z",
      "to=0000-12-31T23:59:59Z",
      "from=0001-01-01T00:00:00Z",
      "from=1969-12-31T23:59:59.999Z",
      "from=2026-11-01T00:00:00%2B23:59",
      "from=2026-11-01T00:00:00-23:59",
      "to=2026-11-01T00:00:00%2B14:01",
      "to=2026-11-01T00:00:00-12:01",
      "to=2026-11-01T00:00:00%2B1401",
    ];
    for (const [listing, token] of listings) {
      for (const query of refused) expectValidationFailed(await harness.get(`${listing}${query}`, token), `${listing}${query}`);
    }
    const accepted = [
      "search=%01",
      "from=1970-01-01T00:00:00Z",
      "to=9999-12-31T23:59:59.999Z",
      "from=2026-11-01T00:00:00%2B14:00",
      "from=2026-11-01T00:00:00-12:00&to=2999-01-01T00:00:00-12:00",
    ];
    for (const [listing, token] of listings) {
      for (const query of accepted) {
        const response = await harness.get(`${listing}${query}`, token);
        expect(response.status, `${listing}${query}: ${JSON.stringify(response.body)}`).toBe(200);
      }
    }
  });

  it("stats: year 0000/0001 ranges and impossible offsets are 400, the edges of the range are answered", async () => {
    const account = await harness.createAccount();
    const stats = `/v1/accounts/${account}/stats?`;
    const refused = [
      "from=0000-01-01T00:00:00Z&to=0000-01-02T00:00:00Z",
      "from=0001-01-01T00:00:00Z&to=0001-01-02T00:00:00Z",
      "to=0001-01-02T00:00:00Z",
      "from=0001-01-01T00:00:00Z",
      "from=2026-11-01T00:00:00%2B23:59&to=2026-11-02T00:00:00Z",
      "from=2026-11-01T00:00:00Z&to=2026-11-02T00:00:00-23:59",
      "from=2026-11-01T00:00:00Z&interval=week&to=0001-01-01T00:00:00Z",
    ];
    for (const query of refused) expectValidationFailed(await harness.get(`${stats}${query}`), query);
    for (const query of [
      "from=1970-01-01T00:00:00Z&to=1970-01-02T00:00:00Z",
      "to=1970-01-05T00:00:00Z",
      "from=9999-12-01T00:00:00Z&to=9999-12-31T23:59:59.999Z",
      "from=9999-01-01T00:00:00Z&to=9999-12-31T23:59:59.999Z&interval=month",
      "from=2026-11-01T00:00:00%2B14:00&to=2026-11-02T00:00:00-12:00",
    ]) {
      const response = await harness.get(`${stats}${query}`);
      expect(response.status, `${query}: ${JSON.stringify(response.body)}`).toBe(200);
    }
  });
});
