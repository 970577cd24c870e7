/**
 * Request fingerprints are stored with every entry and compared with every retry, so the text hashed must never
 * change. src/ledger/core/entry.ts writes the fingerprint out field by field (it runs once per row of every batch);
 * this file keeps the definition it replaced, canonicalJson of an object with sorted keys, and holds the two to the
 * same text over every combination of fields and a few thousand generated requests.
 */
import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { canonicalJson, fingerprintText, requestHash, type EntryRequest } from "../../src/ledger/core/entry.js";

/** The definition, as it was written before the fast path (commit df71731). */
function referenceCanonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(referenceCanonicalJson).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const keys = Object.keys(value).sort();
    return `{${keys.map((key) => `${JSON.stringify(key)}:${referenceCanonicalJson((value as Record<string, unknown>)[key])}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

function fingerprintObject(request: EntryRequest): Record<string, unknown> {
  const priced = request.meter !== undefined && request.meter !== null;
  return {
    type: request.type,
    ...(priced ? { meter: request.meter, quantities: request.quantities } : { amount: request.amount }),
    batch_id: request.batch_id,
    description: request.description,
    metadata: request.metadata,
    ...(request.original_entry_id ? { original_entry_id: request.original_entry_id } : {}),
    ...(request.direction && request.type === "adjustment" ? { direction: request.direction } : {}),
    ...(request.priority !== undefined && request.priority !== null ? { priority: request.priority } : {}),
    ...(request.expires_at !== undefined && request.expires_at !== null ? { expires_at: request.expires_at } : {}),
  };
}

function referenceHash(request: EntryRequest): string {
  return createHash("sha256").update(referenceCanonicalJson(fingerprintObject(request))).digest("hex");
}

/** A small deterministic generator (mulberry32), so a failure names a seed that reproduces it. */
function generator(seed: number) {
  let state = seed >>> 0;
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const pick = <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)]!;
  return { next, pick };
}

const STRINGS = ["", "a", "Zürich", "quote\"and\\slash", "line\nbreak", "emoji 😀", "__proto__", "10", "é"];
const KEYS = ["model", "b", "a", "Z", "10", "2", "__proto__", "é", "", "tokens"];

function value(random: ReturnType<typeof generator>, depth: number): unknown {
  const kind = depth > 2 ? random.pick(["string", "number", "null", "boolean"]) : random.pick(["string", "number", "null", "boolean", "object", "array"]);
  switch (kind) {
    case "string":
      return random.pick(STRINGS);
    case "number":
      return random.pick([0, 1, -1, 0.5, 1e21, 812, Number.MAX_SAFE_INTEGER]);
    case "boolean":
      return random.next() < 0.5;
    case "null":
      return null;
    case "array":
      return Array.from({ length: Math.floor(random.next() * 4) }, () => value(random, depth + 1));
    default: {
      const object: Record<string, unknown> = {};
      for (let count = Math.floor(random.next() * 5); count > 0; count--) {
        Object.defineProperty(object, random.pick(KEYS), { value: value(random, depth + 1), enumerable: true, writable: true, configurable: true });
      }
      return object;
    }
  }
}

function request(random: ReturnType<typeof generator>): EntryRequest {
  const maybe = <T>(present: () => T): T | null | undefined => random.pick([undefined, null, present(), present()]);
  const priced = random.next() < 0.5;
  const generated: EntryRequest = {
    account_id: "org_42",
    type: random.pick(["usage", "purchase", "adjustment", "removal", "refund"] as const),
    amount: random.pick(["0.0032", "1", "25.5", ""]),
    idempotency_key: "key",
    batch_id: random.pick([null, "0193c3a8-4d3e-7000-8000-000000000001"]),
    description: random.pick([null, ...STRINGS]),
    metadata: random.pick([null, value(random, 1) as Record<string, unknown>, { model: "gpt-x", input_tokens: 812, output_tokens: 117 }]),
  };
  if (priced) {
    generated.meter = random.pick(["gpt-x", "openai/gpt-4o-mini"]);
    generated.quantities = random.pick<Record<string, number> | null>([{ input_tokens: 812, output_tokens: 117 }, { output_tokens: 117, input_tokens: 812 }, { requests: 1 }, null]);
    generated.price_version = random.pick([null, 1, 7]);
  } else if (random.next() < 0.3) {
    generated.meter = null;
  }
  const original_entry_id = maybe(() => random.pick(["", "0193c3a8-4d3e-7000-8000-0000000000aa"]));
  if (original_entry_id !== undefined) generated.original_entry_id = original_entry_id;
  const direction = random.pick([undefined, "credit", "debit"] as const);
  if (direction !== undefined) generated.direction = direction;
  const priority = maybe(() => random.pick([0, 50, 100]));
  if (priority !== undefined) generated.priority = priority;
  const expires_at = maybe(() => "2027-01-31T00:00:00.000Z");
  if (expires_at !== undefined) generated.expires_at = expires_at;
  return generated;
}

describe("request fingerprints", () => {
  it("are byte for byte the text of the original definition, for 5,000 generated requests", () => {
    const differing: string[] = [];
    for (let seed = 1; seed <= 5_000; seed++) {
      const generated = request(generator(seed));
      const expected = referenceCanonicalJson(fingerprintObject(generated));
      if (fingerprintText(generated) !== expected) differing.push(`seed ${seed}: ${fingerprintText(generated)} ≠ ${expected}`);
    }
    expect(differing.slice(0, 3)).toEqual([]);
    expect(requestHash(request(generator(1)))).toBe(referenceHash(request(generator(1))));
  });

  it("canonicalJson writes what the original wrote, for generated values (arrays with holes and undefined included)", () => {
    const differing: number[] = [];
    for (let seed = 1; seed <= 2_000; seed++) {
      const generated = value(generator(seed), 0);
      if (canonicalJson(generated) !== referenceCanonicalJson(generated)) differing.push(seed);
    }
    expect(differing).toEqual([]);
    const holes = [1, , 3]; // eslint-disable-line no-sparse-arrays
    for (const odd of [holes, [undefined, () => 1], { a: undefined, b: [undefined] }, new Date(0), undefined]) {
      expect(canonicalJson(odd)).toBe(referenceCanonicalJson(odd));
    }
  });

  it("are pinned: a usage row and a priced row hash to what they always hashed to", () => {
    const plain: EntryRequest = {
      account_id: "org_42",
      type: "usage",
      amount: "0.0032",
      idempotency_key: "req_1",
      batch_id: null,
      description: "gpt-x completion",
      metadata: { output_tokens: 117, model: "gpt-x" },
    };
    const priced: EntryRequest = { ...plain, amount: "", meter: "gpt-x", quantities: { output_tokens: 117, input_tokens: 812 }, price_version: null };
    expect(fingerprintText(plain)).toBe(
      '{"amount":"0.0032","batch_id":null,"description":"gpt-x completion","metadata":{"model":"gpt-x","output_tokens":117},"type":"usage"}',
    );
    expect(fingerprintText(priced)).toBe(
      '{"batch_id":null,"description":"gpt-x completion","metadata":{"model":"gpt-x","output_tokens":117},"meter":"gpt-x","quantities":{"input_tokens":812,"output_tokens":117},"type":"usage"}',
    );
    expect(requestHash(plain)).toBe(referenceHash(plain));
    expect(requestHash(priced)).toBe(referenceHash(priced));
  });
});
