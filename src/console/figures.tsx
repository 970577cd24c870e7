import { formatNanos, numericToNanos } from "../ledger/core/amount.js";
import type { Hold } from "../ledger/holds/hold.js";
import type { PageExpiring } from "../ledger/lots/expiring-page.js";
import type { LotView } from "../ledger/lots/listing.js";
import { Amount } from "./views.js";

/** How many active holds and open lots the account page lists; the API pages through the rest. */
export const ACCOUNT_PAGE_HOLDS_SHOWN = 10;
export const ACCOUNT_PAGE_LOTS_SHOWN = 10;

export function time(iso: string): string {
  return iso.slice(0, 16).replace("T", " ");
}

/**
 * The next expiring credit. A bound (the account list past its caps, see ledger/lots/expiring-page.ts) says so in
 * words, so nobody reads an upper bound as the figure.
 */
export function Expiring(props: { value: PageExpiring | { expires_at: string; amount: string } | null }) {
  const value = props.value;
  if (value === null) return <span class="muted">—</span>;
  if ("exact" in value && !value.exact) {
    return (
      <span data-expiring-bound>
        up to {value.amount}, not before <time datetime={value.expires_at}>{time(value.expires_at)}</time>
      </span>
    );
  }
  return (
    <span>
      {value.amount} on <time datetime={value.expires_at}>{time(value.expires_at)}</time>
    </span>
  );
}

/** Balance, available, held and expiring credit, as `GET /v1/balances/{id}` answers them. */
export function BalanceFigures(props: { balance: string; available: string; expiring: { expires_at: string; amount: string } | null }) {
  // Exact: both are canonical decimal strings; holds never change the balance, only what is available.
  const held = formatNanos(numericToNanos(props.balance) - numericToNanos(props.available));
  return (
    <dl class="figures">
      <div>
        <dt>Balance</dt>
        <dd data-testid="balance">
          <Amount value={props.balance} />
        </dd>
      </div>
      <div>
        <dt>Available</dt>
        <dd data-testid="available">
          <Amount value={props.available} />
        </dd>
      </div>
      <div>
        <dt>Held</dt>
        <dd data-testid="held">{held}</dd>
      </div>
      <div>
        <dt>Expiring next</dt>
        <dd data-testid="expiring">
          <Expiring value={props.expiring} />
        </dd>
      </div>
    </dl>
  );
}

export function HoldsTable(props: { holds: Hold[]; more: boolean }) {
  if (props.holds.length === 0) return null;
  return (
    <>
      <h2>Active holds</h2>
      <table>
        <caption class="visually-hidden">Active holds, newest first</caption>
        <thead>
          <tr>
            <th scope="col">Created</th>
            <th scope="col">Description</th>
            <th scope="col" class="number">
              Amount
            </th>
            <th scope="col">Expires</th>
          </tr>
        </thead>
        <tbody>
          {props.holds.map((hold) => (
            <tr data-hold-id={hold.id}>
              <td>{time(hold.created_at)}</td>
              <td>{hold.description ?? ""}</td>
              <td class="number">{hold.amount}</td>
              <td>{time(hold.expires_at)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {props.more ? <p class="muted">{`The ${ACCOUNT_PAGE_HOLDS_SHOWN} newest are shown; GET /v1/accounts/{id}/holds lists them all.`}</p> : null}
    </>
  );
}

export function LotsTable(props: { lots: LotView[]; more: boolean }) {
  if (props.lots.length === 0) return null;
  return (
    <>
      <h2>Open credit lots</h2>
      <table>
        <caption class="visually-hidden">Open credit lots, in the order usage consumes them</caption>
        <thead>
          <tr>
            <th scope="col">Credit</th>
            <th scope="col" class="number">
              Priority
            </th>
            <th scope="col" class="number">
              Amount
            </th>
            <th scope="col" class="number">
              Remaining
            </th>
            <th scope="col">Expires</th>
          </tr>
        </thead>
        <tbody>
          {props.lots.map((lot) => (
            <tr data-lot-id={lot.entry_id}>
              <td>
                {lot.type} {time(lot.created_at)}
              </td>
              <td class="number">{lot.priority}</td>
              <td class="number">{lot.amount}</td>
              <td class="number">{lot.remaining}</td>
              <td>{lot.expires_at === null ? "never" : time(lot.expires_at)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {props.more ? <p class="muted">{`The first ${ACCOUNT_PAGE_LOTS_SHOWN} in consumption order are shown; GET /v1/accounts/{id}/lots lists them all.`}</p> : null}
    </>
  );
}
