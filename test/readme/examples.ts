/**
 * Reads the curl examples out of README.md (the convention is in docs/readme-examples.md): a fenced block whose
 * first line starts with `$ curl` or `$ export` holds one or more commands, each followed by the exact output it
 * gives. Every other block, and any text around blocks, is ignored, so new sections cannot break the parser; a
 * block marked with `<!-- readme-test: skip … -->` on the line before is reported but not run.
 */

export interface Example {
  /** 1-based line of the `$ curl` in README.md, for failure messages. */
  line: number;
  /** The nearest heading above the example. */
  section: string;
  /** `curl` runs against the server; `export NAME=value` sets a variable for the examples after it; others are not run. */
  kind: "curl" | "export" | "other";
  /** The shell command, without the `$ ` prompt, continuation lines joined as written. */
  command: string;
  /** What the README shows the command printing, `^C` dropped. */
  expected: string;
  /** `curl -N` with a `^C` at the end of its output: a stream the reader interrupts. */
  stream: boolean;
  skip: string | undefined;
}

const FENCE = /^```/;
const SKIP = /<!--\s*readme-test:\s*skip\b\s*(.*?)\s*-->/;

/** True while `text` ends inside a quoted string or with a line continuation, so the command goes on. */
function commandContinues(text: string): boolean {
  let quote: string | undefined;
  for (let index = 0; index < text.length; index++) {
    const character = text[index]!;
    if (quote) {
      if (character === quote) quote = undefined;
      else if (quote === '"' && character === "\\") index++;
    } else if (character === "'" || character === '"') {
      quote = character;
    } else if (character === "\\") {
      index++;
    }
  }
  return quote !== undefined || /\\$/.test(text);
}

export function parseExamples(markdown: string): Example[] {
  const lines = markdown.split("\n");
  const examples: Example[] = [];
  let section = "(top)";
  for (let index = 0; index < lines.length; index++) {
    const heading = /^#{1,6}\s+(.*)$/.exec(lines[index]!);
    if (heading) section = heading[1]!;
    if (!FENCE.test(lines[index]!)) continue;
    const start = index;
    let end = index + 1;
    while (end < lines.length && !FENCE.test(lines[end]!)) end++;
    const body = lines.slice(start + 1, end);
    index = end;
    if (!/^\$ (curl|export) /.test(body[0] ?? "")) continue;
    const skip = SKIP.exec(lines[start - 1] ?? "")?.[1];
    examples.push(...parseBlock(body, start + 2, section, skip === undefined ? undefined : skip || "no reason given"));
  }
  return examples;
}

function parseBlock(body: string[], first_line: number, section: string, skip: string | undefined): Example[] {
  const examples: Example[] = [];
  let position = 0;
  while (position < body.length) {
    const line = body[position]!;
    if (!line.startsWith("$ ")) {
      position++;
      continue;
    }
    const commandLine = first_line + position;
    let command = line.slice(2);
    position++;
    while (commandContinues(command) && position < body.length) command += `\n${body[position++]}`;
    const output: string[] = [];
    while (position < body.length && !body[position]!.startsWith("$ ")) output.push(body[position++]!);
    while (output.length > 0 && output.at(-1)!.trim() === "") output.pop();
    const interrupted = output.at(-1)?.trim() === "^C";
    if (interrupted) output.pop();
    examples.push({
      kind: command.startsWith("curl ") ? "curl" : /^export [A-Za-z_][A-Za-z0-9_]*=/.test(command) ? "export" : "other",
      line: commandLine,
      section,
      command,
      expected: output.join("\n").replace(/\n+$/, ""),
      stream: interrupted || /\bcurl\b[^\n]*\s-N\b/.test(command),
      skip,
    });
  }
  return examples;
}
