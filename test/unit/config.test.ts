import { describe, expect, it } from "vitest";
import { ConfigError, parseConfig } from "../../src/config.js";

describe("configuration", () => {
  it("has working defaults with nothing set", () => {
    const config = parseConfig({});
    expect(config.DATABASE_URL).toBeUndefined();
    expect(config.DATA_DIR).toBe("./data");
    expect(config.PORT).toBe(8080);
    expect(config.CHECKPOINT_REFRESH_EVERY).toBe(1000);
    expect(config.CHECKPOINT_DELTA_MAX).toBe(5000);
    expect(config.MIGRATE_ON_START).toBe(true);
    expect(config.CORS_ORIGINS).toEqual([]);
  });

  it("treats empty strings as unset", () => {
    expect(parseConfig({ DATABASE_URL: "", JWT_SECRET: " " }).DATABASE_URL).toBeUndefined();
  });

  it("names every offending variable", () => {
    try {
      parseConfig({ PORT: "eighty", CHECKPOINT_REFRESH_EVERY: "0", DATABASE_URL: "not a url", JWT_SECRET: "short" });
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      const text = (error as ConfigError).problems.join("\n");
      for (const name of ["PORT", "CHECKPOINT_REFRESH_EVERY", "DATABASE_URL", "JWT_SECRET"]) expect(text).toContain(name);
    }
  });

  it("refuses both JWT_SECRET and JWT_JWKS_URL", () => {
    expect(() =>
      parseConfig({ JWT_SECRET: "x".repeat(32), JWT_JWKS_URL: "https://id.example/.well-known/jwks.json" }),
    ).toThrow(ConfigError);
  });

  it("splits CORS_ORIGINS and parses flags", () => {
    const config = parseConfig({ CORS_ORIGINS: "https://a.example, https://b.example", MIGRATE_ON_START: "false" });
    expect(config.CORS_ORIGINS).toEqual(["https://a.example", "https://b.example"]);
    expect(config.MIGRATE_ON_START).toBe(false);
  });
});
