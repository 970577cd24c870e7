import { describe, expect, it } from "vitest";
import { firstBoundaryFrom, nextRenewalAt, periodAt, type PlanPeriod } from "../../src/ledger/plans/period.js";

const month: PlanPeriod = { kind: "month" };
const at = (text: string) => new Date(text);
const iso = (period: { start: Date; end: Date } | undefined) => period && [period.start.toISOString(), period.end.toISOString()];

describe("plan calendar", () => {
  it("monthly from Jan 31 clamps to the month's last day and comes back to the 31st", () => {
    const anchor = at("2027-01-31T09:00:00.000Z");
    expect(iso(periodAt(month, anchor, anchor))).toEqual(["2027-01-31T09:00:00.000Z", "2027-02-28T09:00:00.000Z"]);
    expect(iso(periodAt(month, anchor, at("2027-02-28T09:00:00.000Z")))).toEqual(["2027-02-28T09:00:00.000Z", "2027-03-31T09:00:00.000Z"]);
    expect(iso(periodAt(month, anchor, at("2027-03-31T08:59:59.999Z")))).toEqual(["2027-02-28T09:00:00.000Z", "2027-03-31T09:00:00.000Z"]);
    expect(iso(periodAt(month, anchor, at("2027-04-30T10:00:00.000Z")))).toEqual(["2027-04-30T09:00:00.000Z", "2027-05-31T09:00:00.000Z"]);
  });

  it("a leap year's February ends on the 29th", () => {
    const anchor = at("2028-01-31T00:00:00.000Z");
    expect(iso(periodAt(month, anchor, at("2028-02-15T00:00:00.000Z")))).toEqual(["2028-01-31T00:00:00.000Z", "2028-02-29T00:00:00.000Z"]);
  });

  it("crosses years and counts fixed periods from the anchor", () => {
    expect(iso(periodAt(month, at("2026-12-31T00:00:00.000Z"), at("2027-02-10T00:00:00.000Z")))).toEqual([
      "2027-01-31T00:00:00.000Z",
      "2027-02-28T00:00:00.000Z",
    ]);
    const thirty: PlanPeriod = { kind: "days", days: 30 };
    expect(iso(periodAt(thirty, at("2027-01-01T00:00:00.000Z"), at("2027-03-05T00:00:00.000Z")))).toEqual([
      "2027-03-02T00:00:00.000Z",
      "2027-04-01T00:00:00.000Z",
    ]);
    expect(periodAt({ kind: "week" }, at("2027-01-08T00:00:00.000Z"), at("2027-01-07T00:00:00.000Z"))).toBeUndefined();
  });

  it("never grants time twice: after a granted period, the next start is at or after its end", () => {
    const anchor = at("2027-01-31T00:00:00.000Z");
    // The current period was granted: the next renewal is its end.
    expect(nextRenewalAt(month, anchor, at("2027-02-10T00:00:00.000Z"), at("2027-02-28T00:00:00.000Z")).toISOString()).toBe("2027-02-28T00:00:00.000Z");
    // Not granted: due at the current period's start (in the past, so at once).
    expect(nextRenewalAt(month, anchor, at("2027-02-10T00:00:00.000Z"), null).toISOString()).toBe("2027-01-31T00:00:00.000Z");
    // A weekly calendar on a granted month: the first weekly boundary at or after the month's end.
    expect(firstBoundaryFrom({ kind: "week" }, at("2027-02-01T00:00:00.000Z"), at("2027-03-01T12:00:00.000Z")).toISOString()).toBe(
      "2027-03-08T00:00:00.000Z",
    );
  });
});
