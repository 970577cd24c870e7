import type { PlanPeriodKind } from "../../db/schema.js";

/**
 * The calendar of a subscription: period k (k = 0, 1, …) starts at anchor + k units. Every boundary is computed
 * from the anchor, never from the previous boundary, so a monthly plan anchored on the 31st clamps to the month's
 * last day (Jan 31, Feb 28, Mar 31) and does not drift to the 28th for good. All arithmetic is in UTC; a day is
 * 86,400 s.
 */
export type PlanPeriod = { kind: "day" | "week" | "month" } | { kind: "days"; days: number };

export interface Period {
  start: Date;
  end: Date;
}

const DAY_MS = 86_400_000;
export const PERIOD_DAYS_MAX = 366;

export function planPeriod(kind: PlanPeriodKind, days: number | null): PlanPeriod {
  if (kind === "days") {
    if (days === null) throw new Error("a `days` period needs its number of days");
    return { kind, days };
  }
  return { kind };
}

/** The API's spelling: `day`, `week`, `month`, or a number of days. */
export function periodLabel(period: PlanPeriod): "day" | "week" | "month" | number {
  return period.kind === "days" ? period.days : period.kind;
}

function fixedLengthMs(period: PlanPeriod): number | undefined {
  if (period.kind === "day") return DAY_MS;
  if (period.kind === "week") return 7 * DAY_MS;
  if (period.kind === "days") return period.days * DAY_MS;
  return undefined;
}

/** anchor + `months` calendar months, the day of month clamped to the target month's last day, time of day kept. */
function addMonths(anchor: Date, months: number): Date {
  const monthIndex = anchor.getUTCFullYear() * 12 + anchor.getUTCMonth() + months;
  const year = Math.floor(monthIndex / 12);
  const month = monthIndex - year * 12;
  const lastDay = new Date(Date.UTC(year, month + 1, 0)).getUTCDate();
  return new Date(
    Date.UTC(
      year,
      month,
      Math.min(anchor.getUTCDate(), lastDay),
      anchor.getUTCHours(),
      anchor.getUTCMinutes(),
      anchor.getUTCSeconds(),
      anchor.getUTCMilliseconds(),
    ),
  );
}

/** Where boundary k is (k may be negative: before the anchor, which no subscription grants). */
export function boundary(period: PlanPeriod, anchor: Date, index: number): Date {
  const length = fixedLengthMs(period);
  if (length !== undefined) return new Date(anchor.getTime() + index * length);
  return addMonths(anchor, index);
}

/** The index of the period that contains `time`: boundary(k) <= time < boundary(k + 1). */
export function periodIndexAt(period: PlanPeriod, anchor: Date, time: Date): number {
  const length = fixedLengthMs(period);
  if (length !== undefined) return Math.floor((time.getTime() - anchor.getTime()) / length);
  let index = (time.getUTCFullYear() - anchor.getUTCFullYear()) * 12 + (time.getUTCMonth() - anchor.getUTCMonth());
  // The month estimate is off by at most one either way (the day and time within the month decide).
  while (boundary(period, anchor, index).getTime() > time.getTime()) index--;
  while (boundary(period, anchor, index + 1).getTime() <= time.getTime()) index++;
  return index;
}

export function periodOf(period: PlanPeriod, anchor: Date, index: number): Period {
  return { start: boundary(period, anchor, index), end: boundary(period, anchor, index + 1) };
}

/** The period containing `time`, or undefined before the anchor (the subscription has not started). */
export function periodAt(period: PlanPeriod, anchor: Date, time: Date): Period | undefined {
  const index = periodIndexAt(period, anchor, time);
  return index < 0 ? undefined : periodOf(period, anchor, index);
}

/** The first boundary at or after `time` (never before the anchor). */
export function firstBoundaryFrom(period: PlanPeriod, anchor: Date, time: Date): Date {
  if (time.getTime() <= anchor.getTime()) return anchor;
  const index = periodIndexAt(period, anchor, time);
  const start = boundary(period, anchor, index);
  return start.getTime() === time.getTime() ? start : boundary(period, anchor, index + 1);
}

/**
 * When the next grant is due. A period is granted only if it starts at or after the end of the last period granted
 * (`granted_end`), so time is never granted twice, whatever the plans, anchors or re-subscriptions in between: the
 * period containing `now` when that holds, otherwise the first boundary at or after `granted_end`.
 */
export function nextRenewalAt(period: PlanPeriod, anchor: Date, now: Date, granted_end: Date | null): Date {
  const current = periodAt(period, anchor, now);
  if (!current) return anchor;
  if (granted_end === null || current.start.getTime() >= granted_end.getTime()) return current.start;
  return firstBoundaryFrom(period, anchor, granted_end);
}
