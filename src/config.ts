import { z } from "zod";
import { parseAmount } from "./ledger/core/amount.js";

/**
 * The environment, parsed once at start. Every limit the service enforces is here so that an operator can
 * see (and change) all of them in one place; nothing else reads `process.env`.
 */

const positiveInt = (fallback: number, max: number) =>
  z.coerce.number().int().positive().max(max).default(fallback);

const booleanFlag = (fallback: boolean) =>
  z
    .enum(["true", "false", "1", "0"])
    .default(fallback ? "true" : "false")
    .transform((value) => value === "true" || value === "1");

const optionalString = z
  .string()
  .optional()
  .transform((value) => (value === undefined || value.trim() === "" ? undefined : value));

export const configSchema = z
  .object({
    DATABASE_URL: optionalString.pipe(z.url().optional()),
    DATA_DIR: z.string().min(1).default("./data"),
    HOST: z.string().min(1).default("0.0.0.0"),
    PORT: z.coerce.number().int().min(0).max(65535).default(8080),
    TALLY_ADMIN_KEY: optionalString.pipe(z.string().min(32, "must be at least 32 characters").optional()),
    JWT_SECRET: optionalString.pipe(z.string().min(32, "must be at least 32 characters").optional()),
    JWT_JWKS_URL: optionalString.pipe(z.url().optional()),
    JWT_ISSUER: optionalString,
    JWT_AUDIENCE: optionalString,
    CHECKPOINT_REFRESH_EVERY: positiveInt(1000, 1_000_000_000),
    CHECKPOINT_DELTA_MAX: positiveInt(5000, 1_000_000_000),
    MAX_BODY_BYTES: positiveInt(8 * 1024 * 1024, 64 * 1024 * 1024),
    REQUEST_TIMEOUT_MS: positiveInt(30_000, 600_000),
    CORS_ORIGINS: optionalString.transform((value) =>
      value === undefined
        ? []
        : value
            .split(",")
            .map((origin) => origin.trim())
            .filter((origin) => origin !== ""),
    ),
    LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
    DATABASE_POOL_MAX: positiveInt(10, 200),
    MIGRATE_ON_START: booleanFlag(true),
    NOTIFY_CHANNEL: z
      .string()
      .regex(/^[a-z_][a-z0-9_]{0,62}$/, "must be a lower-case PostgreSQL identifier")
      .default("tally_balance_restored"),
    EVENT_RETENTION_DAYS: positiveInt(7, 3650),
    HOLD_RETENTION_DAYS: positiveInt(30, 3650),
    // Signs cursors. Unset: a random key created once and kept in the database, shared by every process using it.
    TALLY_SIGNING_KEY: optionalString.pipe(z.string().min(32, "must be at least 32 characters").optional()),
    // Group commit of single posts (src/ledger/posting/group-commit.ts): posts waiting per process (beyond it, 503),
    // rows per grouped INSERT, and how long a post may wait to be written (then 503, unwritten).
    POSTING_QUEUE_ROWS_MAX: positiveInt(10_000, 1_000_000),
    POSTING_FLUSH_ROWS_MAX: positiveInt(500, 10_000),
    POSTING_QUEUE_WAIT_MAX_MS: positiveInt(10_000, 600_000),
    // How often each process sweeps due credit lots; 0 turns the sweep off (reads still settle their own account).
    EXPIRY_SWEEP_INTERVAL_MS: z.coerce.number().int().min(0).max(3_600_000).default(1000),
    // How often each process renews due plan subscriptions (src/ledger/plans/); 0 turns the scheduler off (then run
    // renewals with POST /v1/renewals/run or `tally renewals`). At most 30 s, so renewals stay within a minute.
    RENEWAL_INTERVAL_MS: z.coerce.number().int().min(0).max(30_000).default(10_000),
    /** On SIGTERM/SIGINT, in-flight requests get this long to finish before their connections are cut. */
    SHUTDOWN_TIMEOUT_MS: positiveInt(10_000, 600_000),
    /** Failed authentications one client address may make per minute before unknown credentials get 429. */
    AUTH_FAILURES_PER_MINUTE_MAX: positiveInt(30, 1_000_000),
    // The admin console at /console (src/console/).
    CONSOLE_ENABLED: booleanFlag(true),
    // Outbound webhooks (src/webhooks/). Private networks: deliver to loopback, private, link-local and metadata
    // addresses (tests, development); off, such addresses are refused after DNS at delivery time.
    WEBHOOK_ALLOW_PRIVATE_NETWORKS: booleanFlag(false),
    WEBHOOK_ATTEMPT_TIMEOUT_MS: positiveInt(10_000, 120_000),
    WEBHOOK_IN_FLIGHT_PER_ENDPOINT_MAX: positiveInt(4, 100),
    WEBHOOK_CONCURRENCY_MAX: positiveInt(32, 1000),
    // How often each process looks for deliveries due (retries, other processes' events); 0: this process delivers none.
    WEBHOOK_POLL_INTERVAL_MS: z.coerce.number().int().min(0).max(60_000).default(1000),
    // The first retry waits about this long; each later one three times longer, up to 3 h (src/webhooks/schedule.ts).
    WEBHOOK_RETRY_BASE_MS: z.coerce.number().int().min(100).max(600_000).default(5000),
    // Stripe webhooks (src/payments/stripe/): the endpoint's signing secret (unset: POST /webhooks/stripe is 404),
    // and the credits one major unit of the payment's currency buys (an exact decimal, e.g. 1 credit per 1 USD).
    STRIPE_WEBHOOK_SECRET: optionalString,
    STRIPE_CREDITS_PER_UNIT: z
      .string()
      .default("1")
      .refine((value) => "nanos" in parseAmount(value), "must be a decimal greater than 0 with up to 9 fractional digits"),
    // Auto top-up (src/ledger/auto-topup/): how often each process looks for accounts to evaluate (0: never), and
    // how long an unfulfilled request blocks the next one.
    AUTO_TOPUP_INTERVAL_MS: z.coerce.number().int().min(0).max(60_000).default(250),
    AUTO_TOPUP_REQUEST_EXPIRY_MS: positiveInt(60 * 60 * 1000, 31 * 24 * 60 * 60 * 1000),
  })
  .refine((config) => !(config.JWT_SECRET && config.JWT_JWKS_URL), {
    message: "set JWT_SECRET or JWT_JWKS_URL, not both",
    path: ["JWT_JWKS_URL"],
  });

export type Config = z.infer<typeof configSchema>;

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n${problems.map((problem) => `  ${problem}`).join("\n")}`);
  }
}

export function parseConfig(environment: Record<string, string | undefined>): Config {
  const result = configSchema.safeParse(environment);
  if (!result.success) {
    throw new ConfigError(
      result.error.issues.map((issue) => `${issue.path.join(".") || "(environment)"}: ${issue.message}`),
    );
  }
  return result.data;
}
