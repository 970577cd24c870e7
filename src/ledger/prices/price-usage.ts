import { TallyError } from "../../errors.js";
import { formatNanos } from "../core/amount.js";
import type { LedgerContext } from "../core/context.js";
import { priceCacheOf } from "./price-cache.js";
import { costOf, versionInForce, type PriceVersion, type Quantities } from "./pricing.js";

/** What a client sends instead of an amount. */
export interface MeteredUsage {
  meter: string;
  quantities: Quantities;
}

export interface PricedUsage {
  nanos: bigint;
  /** The canonical amount; "0" only for an estimate or a check. */
  amount: string;
  meter: string;
  quantities: Quantities;
  price_version: number;
}

/**
 * Prices usage rows with the versions in force now by the ledger clock, from the in-process cache: one awaited
 * check at most (none when warm), then pure arithmetic. `fieldOf(position)` names a row in error fields
 * ("entries[3]." in a batch); it is called only for a row that cannot be priced, so a batch of 10,000 rows builds
 * no field names. A batch is refused whole on the first row that cannot be priced, before anything is written.
 */
export async function priceUsages(
  context: LedgerContext,
  usages: readonly MeteredUsage[],
  fieldOf: (position: number) => string = () => "",
): Promise<PricedUsage[]> {
  const cache = priceCacheOf(context);
  await cache.fresh();
  const at = context.now();
  const priced = new Array<PricedUsage>(usages.length);
  // Rows of a batch mostly share a meter: its version is looked up once per run of rows, not once per row.
  let meter: string | undefined;
  let version: PriceVersion | undefined;
  for (let position = 0; position < usages.length; position++) {
    const usage = usages[position]!;
    if (usage.meter !== meter) {
      meter = usage.meter;
      version = versionInForce(cache.versionsOf(meter), at);
    }
    priced[position] = priceWith(version, usage, fieldOf, position);
  }
  return priced;
}

export async function priceUsage(context: LedgerContext, usage: MeteredUsage): Promise<PricedUsage> {
  const [priced] = await priceUsages(context, [usage]);
  return priced!;
}

function priceWith(
  version: PriceVersion | undefined,
  usage: MeteredUsage,
  fieldOf: (position: number) => string,
  position: number,
): PricedUsage {
  if (!version) {
    const field = fieldOf(position);
    throw new TallyError("price_not_found", `${field}meter ${JSON.stringify(usage.meter)} has no price in force; set one with PUT /v1/prices/{meter}`, {
      meter: usage.meter,
      ...(field === "" ? {} : { field: `${field}meter` }),
    });
  }
  const cost = costOf(version, usage.quantities);
  if ("problem" in cost) {
    const field = fieldOf(position);
    const [name, message] =
      cost.problem === "unknown_quantity"
        ? [`${field}quantities.${cost.name}`, `is not priced by ${usage.meter} version ${version.version} (it prices ${[...version.unit_price_nanos.keys()].join(", ")})`]
        : [`${field}quantities`, "cost more than 1000000000000000 under the price in force"];
    throw new TallyError("validation_failed", `${name}: ${message}`, { errors: [{ field: name, message }] });
  }
  return {
    nanos: cost.nanos,
    amount: formatNanos(cost.nanos),
    meter: usage.meter,
    quantities: usage.quantities,
    price_version: version.version,
  };
}

/** Usage that would be written must cost something: a zero cost is refused rather than recorded (docs/design.md §24). */
export function refuseZeroCost(priced: PricedUsage, field = ""): PricedUsage {
  if (priced.nanos === 0n) {
    throw new TallyError(
      "zero_cost_usage",
      `${field}quantities cost 0 under ${priced.meter} version ${priced.price_version}; nothing was written`,
      { meter: priced.meter, price_version: priced.price_version },
    );
  }
  return priced;
}
