// `npm run migrate`, kept for existing scripts; the same as `tally migrate`.
process.argv.splice(2, 0, "migrate");
await import("./tally.js");
