#!/usr/bin/env node
// The `tally` command: runs src/cli/tally.ts through tsx (the sources are TypeScript; see package.json "bin").
import { register } from "tsx/esm/api";

register();
await import("../src/cli/tally.ts");
