/** The UTC calendar month that contains `time`: [start, end). The monthly limit of auto top-up is counted over it. */
export function utcMonthOf(time: Date): { start: Date; end: Date } {
  const start = new Date(Date.UTC(time.getUTCFullYear(), time.getUTCMonth(), 1));
  const end = new Date(Date.UTC(time.getUTCFullYear(), time.getUTCMonth() + 1, 1));
  return { start, end };
}
