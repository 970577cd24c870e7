import { defineConfig } from "drizzle-kit";

// drizzle-kit only generates and checks migrations here; tally applies them itself (src/db/migrate.ts), on
// PostgreSQL and on the embedded store alike.
export default defineConfig({
  dialect: "postgresql",
  schema: "./src/db/schema.ts",
  out: "./drizzle",
  dbCredentials: { url: process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres" },
});
