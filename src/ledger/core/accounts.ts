import { asc, eq, gt } from "drizzle-orm";
import { accounts } from "../../db/schema.js";
import { TallyError } from "../../errors.js";
import { formatNanos } from "./amount.js";
import { getBalances } from "../balances/balances.js";
import type { LedgerContext } from "./context.js";

export interface Account {
  id: string;
  metadata: Record<string, unknown>;
  created_at: string;
}

export interface AccountWithBalance extends Account {
  balance: string;
  available: string;
}

type AccountRow = typeof accounts.$inferSelect;

function toAccount(row: AccountRow): Account {
  return {
    id: row.id,
    metadata: row.metadata as Record<string, unknown>,
    created_at: new Date(row.createdAt).toISOString(),
  };
}

/** Creates the account, or returns the existing one unchanged (`created: false`); never overwrites metadata. */
export async function createAccount(
  context: LedgerContext,
  input: { id: string; metadata: Record<string, unknown> },
): Promise<{ account: Account; created: boolean }> {
  const { orm } = context.database;
  const [inserted] = await orm
    .insert(accounts)
    .values({ id: input.id, metadata: input.metadata })
    .onConflictDoNothing({ target: accounts.id })
    .returning();
  context.known_accounts.remember(input.id);
  if (inserted) return { account: toAccount(inserted), created: true };
  const [existing] = await orm.select().from(accounts).where(eq(accounts.id, input.id));
  if (!existing) throw new Error(`account ${input.id} conflicted on insert but cannot be read`);
  return { account: toAccount(existing), created: false };
}

export async function getAccount(context: LedgerContext, id: string): Promise<AccountWithBalance> {
  const [row] = await context.database.orm.select().from(accounts).where(eq(accounts.id, id));
  if (!row) throw new TallyError("account_not_found", `account ${id} does not exist`);
  const { balances, available } = await getBalances(context, [id]);
  return {
    ...toAccount(row),
    balance: formatNanos(balances.get(id) ?? 0n),
    available: formatNanos(available.get(id) ?? 0n),
  };
}

/** Accounts in id order after `after_id`, with their balances from one bulk query per page. */
export async function listAccounts(
  context: LedgerContext,
  page: { limit: number; after_id: string | undefined },
): Promise<{ accounts: AccountWithBalance[]; next_after_id: string | undefined }> {
  const rows = await context.database.orm
    .select()
    .from(accounts)
    .where(page.after_id === undefined ? undefined : gt(accounts.id, page.after_id))
    .orderBy(asc(accounts.id))
    .limit(page.limit + 1);
  const pageRows = rows.slice(0, page.limit);
  // An admin listing, not an observation a gateway acts on: no depletion markers from here.
  const { balances, available } = await getBalances(
    context,
    pageRows.map((row) => row.id),
    { observe: false },
  );
  return {
    accounts: pageRows.map((row) => ({
      ...toAccount(row),
      balance: formatNanos(balances.get(row.id) ?? 0n),
      available: formatNanos(available.get(row.id) ?? 0n),
    })),
    next_after_id: rows.length > page.limit ? pageRows.at(-1)?.id : undefined,
  };
}
