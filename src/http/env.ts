import type { Principal } from "../auth/scopes.js";

/** Per-request values that middleware sets for handlers. */
export interface AppEnv {
  Variables: {
    principal: Principal;
    requestId: string;
  };
}
