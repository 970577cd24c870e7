import { AMOUNT_MAX_NANOS } from "../core/amount.js";

/** One version of a meter's price, as pricing reads it. */
export interface PriceVersion {
  meter: string;
  version: number;
  /** Quantity name → price per `per` units, in nano-credits. */
  unit_price_nanos: ReadonlyMap<string, bigint>;
  per: bigint;
  valid_from: Date;
}

export type Quantities = Readonly<Record<string, number>>;

export type CostProblem =
  | { problem: "unknown_quantity"; name: string }
  | { problem: "too_large" };

/**
 * The cost of `quantities` under `price`, in nano-credits: the exact sum of quantity × unit price / per, rounded
 * **up** to the next nano-credit once, on the total (docs/design.md §24). Rounding up means a usage that costs
 * anything costs at least 1e-9: nothing is ever recorded as free because it was small, and the rounding is at most
 * one nano-credit per entry, always in the same direction, so it can be explained. The same function prices usage,
 * estimates, balance checks and holds, so they always agree.
 */
export function costOf(price: PriceVersion, quantities: Quantities): { nanos: bigint } | CostProblem {
  let numerator = 0n;
  for (const [name, quantity] of Object.entries(quantities)) {
    const unit = price.unit_price_nanos.get(name);
    if (unit === undefined) return { problem: "unknown_quantity", name };
    numerator += BigInt(quantity) * unit;
  }
  const nanos = (numerator + price.per - 1n) / price.per;
  if (nanos > AMOUNT_MAX_NANOS) return { problem: "too_large" };
  return { nanos };
}

/**
 * The version in force at `at`: the highest version whose valid_from is at or before `at`. A later PUT therefore
 * supersedes every earlier version from its own valid_from on, including versions still scheduled.
 */
export function versionInForce(versions: readonly PriceVersion[], at: Date): PriceVersion | undefined {
  let best: PriceVersion | undefined;
  for (const version of versions) {
    if (version.valid_from.getTime() <= at.getTime() && (best === undefined || version.version > best.version)) best = version;
  }
  return best;
}
