import { createRemoteJWKSet, jwtVerify, type JWTVerifyGetKey } from "jose";

const ACCOUNT_ID_PATTERN = /^[A-Za-z0-9._:@-]{1,128}$/;

export interface JwtOptions {
  secret: string | undefined;
  jwks_url: string | undefined;
  issuer: string | undefined;
  audience: string | undefined;
}

/**
 * Verifies end-user tokens. Algorithms are pinned per key source, so `alg: none` and an HS256 token signed with a
 * public key are both refused; expiry, issuer and audience are checked by jose.
 */
export class JwtVerifier {
  private readonly key: Uint8Array | JWTVerifyGetKey;
  private readonly algorithms: string[];

  private constructor(
    key: Uint8Array | JWTVerifyGetKey,
    algorithms: string[],
    private readonly options: JwtOptions,
  ) {
    this.key = key;
    this.algorithms = algorithms;
  }

  /** Undefined when neither JWT_SECRET nor JWT_JWKS_URL is set: end-user tokens are then refused. */
  static fromOptions(options: JwtOptions): JwtVerifier | undefined {
    if (options.secret) return new JwtVerifier(new TextEncoder().encode(options.secret), ["HS256"], options);
    if (options.jwks_url) {
      const jwks = createRemoteJWKSet(new URL(options.jwks_url), { timeoutDuration: 5_000, cooldownDuration: 30_000 });
      return new JwtVerifier(jwks, ["RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA"], options);
    }
    return undefined;
  }

  /** The token's account id (`sub`), or undefined for any token that does not verify. */
  async verify(token: string): Promise<string | undefined> {
    try {
      const verifyOptions = {
        algorithms: this.algorithms,
        issuer: this.options.issuer,
        audience: this.options.audience,
        clockTolerance: 5,
        requiredClaims: ["sub", "exp"],
      };
      const { payload } =
        this.key instanceof Uint8Array
          ? await jwtVerify(token, this.key, verifyOptions)
          : await jwtVerify(token, this.key, verifyOptions);
      if (typeof payload.sub !== "string" || !ACCOUNT_ID_PATTERN.test(payload.sub)) return undefined;
      return payload.sub;
    } catch {
      return undefined;
    }
  }
}
