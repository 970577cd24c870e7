// `npm run keys -- …`, kept for existing scripts; the same as `tally keys …`.
process.argv.splice(2, 0, "keys");
await import("./tally.js");
