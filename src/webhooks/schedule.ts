/**
 * The retry schedule. After the n-th failed attempt (n = 1, 2, …) the next one waits base × 3^(n−1), at most
 * RETRY_DELAY_MAX_MS, times a random factor in [0.75, 1.25) so that endpoints that failed together do not all come
 * back in the same instant. With the default base of 5 s: about 5 s, 15 s, 45 s, 2¼ min, 6¾ min, 20 min, 1 h, then
 * every 3 h; about 15 attempts in all. The last attempt is made at the delivery's give-up time, 24 h after it was
 * created; if that one fails too, the delivery is `failed`.
 */
export const RETRY_DELAY_MAX_MS = 3 * 60 * 60 * 1000;
export const DELIVERY_LIFETIME_MS = 24 * 60 * 60 * 1000;
export const RETRY_BASE_DEFAULT_MS = 5000;
const JITTER_LOW = 0.75;
const JITTER_SPAN = 0.5;

/** The wait after `failed_attempts` failures; `random` is uniform in [0, 1). */
export function retryDelayMs(failed_attempts: number, base_ms: number, random: () => number): number {
  const exponent = Math.min(Math.max(failed_attempts - 1, 0), 30);
  const delay = Math.min(base_ms * 3 ** exponent, RETRY_DELAY_MAX_MS);
  return Math.round(delay * (JITTER_LOW + JITTER_SPAN * random()));
}
