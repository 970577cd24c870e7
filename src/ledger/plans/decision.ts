import { firstBoundaryFrom, periodAt, type Period } from "./period.js";
import type { PlanTerms } from "./plans.js";
import type { SubscriptionRow } from "./subscriptions.js";

/**
 * What a renewal of one subscription would do now, from its row and its plan alone (no I/O), so that GET, the dry
 * run and the real run cannot disagree. A grant covers the period that contains `now`; only the current period is
 * ever granted, so a scheduler that was down for three periods grants the current one and not the missed ones.
 */
export type RenewalDecision =
  | {
      kind: "grant";
      period: Period;
      /** The previous period's grant, whose unconsumed credit rolls over; null when nothing can roll over. */
      rollover_from: string | null;
    }
  | { kind: "skip"; reason: "already_granted" | "overlaps_granted_period" | "not_started" | "canceled"; next_renewal_at: Date | null };

export function decideRenewal(row: SubscriptionRow, plan: PlanTerms, now: Date): RenewalDecision {
  if (row.status !== "active") return { kind: "skip", reason: "canceled", next_renewal_at: null };
  const anchor = new Date(row.anchor);
  const period = periodAt(plan.period, anchor, now);
  if (!period) return { kind: "skip", reason: "not_started", next_renewal_at: anchor };
  const grantedEnd = row.granted_period_end === null ? null : new Date(row.granted_period_end);
  if (grantedEnd !== null && period.start.getTime() < grantedEnd.getTime()) {
    const sameStart = row.granted_period_start !== null && new Date(row.granted_period_start).getTime() === period.start.getTime();
    return {
      kind: "skip",
      reason: sameStart ? "already_granted" : "overlaps_granted_period",
      next_renewal_at: firstBoundaryFrom(plan.period, anchor, grantedEnd),
    };
  }
  // Credit rolls over only from the period just before this one: after downtime or a gap, the old lot expired
  // long ago and nothing carries across the missed periods.
  const contiguous = grantedEnd !== null && grantedEnd.getTime() === period.start.getTime();
  const rollover_from = plan.rollover_max !== null && contiguous ? row.granted_entry_id : null;
  return { kind: "grant", period, rollover_from };
}
