/**
 * "No bound yet" as a value, for keyset listings and fold positions. A statement written `$n IS NULL OR column < $n`
 * reads well, but once PostgreSQL plans the prepared statement generically (postgres.js prepares every statement,
 * and the server switches after a few executions when the estimates look alike) the OR is no index condition: a
 * page deep in a listing then reads and throws away every row above its cursor. Passing the largest value instead
 * keeps `column < $n` an index condition in every plan (test/support/generic-plan.ts checks it).
 */

/** Above every bigint column value (seq, event ids): the first page's "before" bound. */
export const BIGINT_MAX = "9223372036854775807";

/** Above every uuid: the first page's "before" bound for lists ordered by id. */
export const UUID_MAX = "ffffffff-ffff-ffff-ffff-ffffffffffff";
