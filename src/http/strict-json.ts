/**
 * A JSON parser that refuses what JSON.parse would silently change, because a ledger must store what it was sent
 * or refuse it:
 *   - a key repeated in one object (JSON.parse keeps the last: `"amount":"1","amount":"1000"` would post 1000);
 *   - a whole number beyond ±(2^53 − 1) (JSON.parse rounds it, so a different number would replay as the same
 *     request);
 *   - nesting deeper than `depth_max` (a deep body would overflow the stack of every recursive step after it).
 * Every other key is kept as an own property, `__proto__` included (JSON.parse does that too; assignment would
 * set the prototype instead).
 *
 * Syntax errors are `StrictJsonError` with `kind: "syntax"`; the refusals above have `kind: "refused"` and name
 * the place (`entries[3].metadata`) where they were found.
 */

export class StrictJsonError extends Error {
  constructor(
    readonly kind: "syntax" | "refused",
    message: string,
    /** Where a refusal was found, as `entries[3].metadata`; empty for the top level or a syntax error. */
    readonly field: string = "",
  ) {
    super(message);
    this.name = "StrictJsonError";
  }
}

const NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;
// JSON strings may not hold raw control characters (U+0000–U+001F): the character classes name them to exclude them.
/* eslint-disable no-control-regex */
/** A string without escapes or control characters, which can be sliced out as it is. */
const PLAIN_STRING = /[^"\\\u0000-\u001f]*"/y;
/** A string with escapes; JSON.parse decodes it. */
const ESCAPED_STRING = /(?:[^"\\\u0000-\u001f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*"/y;
/* eslint-enable no-control-regex */

class Parser {
  private position = 0;
  private readonly path: (string | number)[] = [];

  constructor(
    private readonly text: string,
    private readonly depth_max: number,
  ) {}

  parse(): unknown {
    const value = this.value(0);
    this.skipWhitespace();
    if (this.position !== this.text.length) this.syntax("unexpected text after the JSON value");
    return value;
  }

  private field(): string {
    let name = "";
    for (const part of this.path) name += typeof part === "number" ? `[${part}]` : name === "" ? part : `.${part}`;
    return name;
  }

  private syntax(message: string): never {
    throw new StrictJsonError("syntax", `${message} at byte ${this.position}`);
  }

  private refuse(message: string): never {
    const field = this.field();
    throw new StrictJsonError("refused", message, field);
  }

  private skipWhitespace(): void {
    const text = this.text;
    let position = this.position;
    for (;;) {
      const code = text.charCodeAt(position);
      if (code === 0x20 || code === 0x0a || code === 0x0d || code === 0x09) position++;
      else break;
    }
    this.position = position;
  }

  private value(depth: number): unknown {
    this.skipWhitespace();
    const code = this.text.charCodeAt(this.position);
    switch (code) {
      case 0x7b /* { */:
        return this.object(depth + 1);
      case 0x5b /* [ */:
        return this.array(depth + 1);
      case 0x22 /* " */:
        return this.string();
      case 0x74 /* t */:
        return this.literal("true", true);
      case 0x66 /* f */:
        return this.literal("false", false);
      case 0x6e /* n */:
        return this.literal("null", null);
      default:
        if (code === 0x2d || (code >= 0x30 && code <= 0x39)) return this.number();
        return this.syntax(Number.isNaN(code) ? "unexpected end of the body" : "unexpected character");
    }
  }

  private literal<T>(word: string, value: T): T {
    if (!this.text.startsWith(word, this.position)) this.syntax("unexpected character");
    this.position += word.length;
    return value;
  }

  private number(): number {
    NUMBER.lastIndex = this.position;
    const match = NUMBER.exec(this.text);
    if (!match) return this.syntax("malformed number");
    this.position = NUMBER.lastIndex;
    const value = Number(match[0]);
    if (Number.isInteger(value) && !Number.isSafeInteger(value)) {
      this.refuse(`the number ${match[0].slice(0, 40)} is a whole number beyond ±(2^53 − 1), which JSON numbers cannot carry exactly; send it as a string`);
    }
    return value;
  }

  private string(): string {
    const start = this.position + 1;
    PLAIN_STRING.lastIndex = start;
    if (PLAIN_STRING.test(this.text)) {
      this.position = PLAIN_STRING.lastIndex;
      return this.text.slice(start, this.position - 1);
    }
    ESCAPED_STRING.lastIndex = start;
    if (!ESCAPED_STRING.test(this.text)) return this.syntax("malformed string");
    const end = ESCAPED_STRING.lastIndex;
    this.position = end;
    return JSON.parse(this.text.slice(start - 1, end)) as string;
  }

  private enter(depth: number): void {
    if (depth > this.depth_max) this.refuse(`is nested deeper than ${this.depth_max} levels`);
  }

  private object(depth: number): Record<string, unknown> {
    this.enter(depth);
    this.position++;
    const result: Record<string, unknown> = {};
    this.skipWhitespace();
    if (this.text.charCodeAt(this.position) === 0x7d /* } */) {
      this.position++;
      return result;
    }
    for (;;) {
      this.skipWhitespace();
      if (this.text.charCodeAt(this.position) !== 0x22) this.syntax("expected a key");
      const key = this.string();
      this.skipWhitespace();
      if (this.text.charCodeAt(this.position) !== 0x3a /* : */) this.syntax("expected ':'");
      this.position++;
      this.path.push(key);
      if (Object.hasOwn(result, key)) this.refuse("appears twice in one object; send each key once");
      const value = this.value(depth);
      this.path.pop();
      if (key === "__proto__") {
        // Assignment would replace the prototype; a ledger keeps the key as data.
        Object.defineProperty(result, key, { value, enumerable: true, writable: true, configurable: true });
      } else {
        result[key] = value;
      }
      this.skipWhitespace();
      const next = this.text.charCodeAt(this.position++);
      if (next === 0x2c /* , */) continue;
      if (next === 0x7d /* } */) return result;
      this.position--;
      this.syntax("expected ',' or '}'");
    }
  }

  private array(depth: number): unknown[] {
    this.enter(depth);
    this.position++;
    const result: unknown[] = [];
    this.skipWhitespace();
    if (this.text.charCodeAt(this.position) === 0x5d /* ] */) {
      this.position++;
      return result;
    }
    for (;;) {
      this.path.push(result.length);
      result.push(this.value(depth));
      this.path.pop();
      this.skipWhitespace();
      const next = this.text.charCodeAt(this.position++);
      if (next === 0x2c) continue;
      if (next === 0x5d) return result;
      this.position--;
      this.syntax("expected ',' or ']'");
    }
  }
}

/**
 * The keys in the text: every string followed (after whitespace) by a colon. Strings are skipped with indexOf, so
 * this is one native scan of the text; it needs the text to be valid JSON (JSON.parse said so already).
 */
function countKeys(text: string): number {
  let keys = 0;
  let position = text.indexOf('"');
  while (position >= 0) {
    let end = text.indexOf('"', position + 1);
    // A quote preceded by an odd number of backslashes is escaped: keep looking.
    for (;;) {
      let backslashes = 0;
      while (text.charCodeAt(end - 1 - backslashes) === 0x5c) backslashes++;
      if (backslashes % 2 === 0) break;
      end = text.indexOf('"', end + 1);
    }
    let next = end + 1;
    for (let code = text.charCodeAt(next); code === 0x20 || code === 0x0a || code === 0x0d || code === 0x09; code = text.charCodeAt(++next));
    if (text.charCodeAt(next) === 0x3a) keys++;
    position = text.indexOf('"', next);
  }
  return keys;
}

/**
 * Whether a parsed value breaks no rule: nesting within `depth_max`, no unsafe integer (JSON.parse rounds one beyond
 * 2^53 to another beyond it, so the check holds on the rounded value). Adds the keys of every object to `keys`.
 */
function clean(value: unknown, depth_left: number, keys: { count: number }): boolean {
  if (typeof value === "number") return !Number.isInteger(value) || Number.isSafeInteger(value);
  if (value === null || typeof value !== "object") return true;
  if (depth_left === 0) return false;
  if (Array.isArray(value)) {
    for (const item of value) if (!clean(item, depth_left - 1, keys)) return false;
    return true;
  }
  for (const key in value) {
    keys.count++;
    if (!clean((value as Record<string, unknown>)[key], depth_left - 1, keys)) return false;
  }
  return true;
}

/**
 * Parses `text` as one JSON value under the rules above. The common case costs about one native JSON.parse: the
 * parsed value is walked for depth and unsafe integers, and its keys are counted against the keys in the text (a
 * duplicate makes the text hold more). Only a body that fails a check, or that JSON.parse refuses, goes through the
 * parser above, which finds the exact place and says what is wrong. JSON.parse keeps `__proto__` as an own key, as
 * the parser above does.
 */
export function parseStrictJson(text: string, options: { depth_max: number }): unknown {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return new Parser(text, options.depth_max).parse();
  }
  const keys = { count: 0 };
  // `for…in` in clean() would also walk inherited enumerable keys; JSON.parse objects have none.
  if (clean(value, options.depth_max, keys) && keys.count === countKeys(text)) return value;
  return new Parser(text, options.depth_max).parse();
}
