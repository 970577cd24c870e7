// Compiles src/ to dist/ when dist/ is missing or older than any source file, so `npm start` works on a fresh
// clone (after `npm ci`) and after a `git pull`, and costs nothing when dist/ is current.
import { spawnSync } from "node:child_process";
import process from "node:process";
import { existsSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";

const root = path.resolve(import.meta.dirname, "..");
const entry = path.join(root, "dist", "main.js");
// Touched after each build made here; tsc's own build info counts too, so `npm run build` also marks dist/ current.
const stamps = [path.join(root, "dist", ".build-stamp"), path.join(root, "dist", ".tsbuildinfo")];

function newestSource(directory) {
  let newest = 0;
  for (const entry of readdirSync(directory, { withFileTypes: true })) {
    const full = path.join(directory, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestSource(full) : statSync(full).mtimeMs);
  }
  return newest;
}

const sourcesChanged = () =>
  Math.max(
    newestSource(path.join(root, "src")),
    statSync(path.join(root, "tsconfig.json")).mtimeMs,
    statSync(path.join(root, "tsconfig.build.json")).mtimeMs,
  ) > Math.max(...stamps.map((stamp) => (existsSync(stamp) ? statSync(stamp).mtimeMs : 0)));

if (!existsSync(entry) || sourcesChanged()) {
  let tsc;
  try {
    tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
  } catch {
    process.stderr.write("tally: dist/ is missing or out of date and TypeScript is not installed; run `npm ci` and `npm run build`\n");
    process.exit(1);
  }
  process.stderr.write("tally: compiling src/ to dist/ (npm run build)\n");
  const result = spawnSync(process.execPath, [tsc, "-p", path.join(root, "tsconfig.build.json")], { stdio: "inherit" });
  if (result.status !== 0) process.exit(result.status ?? 1);
  writeFileSync(stamps[0], `${new Date().toISOString()}\n`);
}
