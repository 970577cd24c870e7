import type { Child } from "hono/jsx";
import type { Principal } from "../auth/scopes.js";

export function Layout(props: { title: string; principal?: Principal; csrf?: string; children?: Child }) {
  const who = props.principal === undefined ? undefined : props.principal.kind === "user" ? `user ${props.principal.account_id}` : `key ${props.principal.key_id}`;
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>{`${props.title} · tally console`}</title>
        <link rel="stylesheet" href="/console/assets/console.css" />
      </head>
      <body>
        <a class="skip-link" href="#main">
          Skip to content
        </a>
        <header>
          <strong>tally console</strong>
          <nav aria-label="Main">{props.principal?.kind === "service" ? <a href="/console/accounts">Accounts</a> : null}</nav>
          {who === undefined ? null : (
            <form method="post" action="/console/sign-out">
              <span class="muted">{who} </span>
              <input type="hidden" name="csrf" value={props.csrf ?? ""} />
              <button type="submit" class="secondary">
                Sign out
              </button>
            </form>
          )}
        </header>
        <main id="main" tabindex={-1}>{props.children}</main>
      </body>
    </html>
  );
}

export function SignInPage(props: { error?: string }) {
  return (
    <Layout title="Sign in">
      <h1>Sign in</h1>
      <p>Use an admin key, a service key (tk_…), or an end-user token for a read-only view of your own account.</p>
      {props.error ? (
        <p class="error" role="alert">
          {props.error}
        </p>
      ) : null}
      <form method="post" action="/console/sign-in" class="inline">
        <label>
          Key or token
          <input type="password" name="credential" autocomplete="off" required maxlength={4096} size={60} autofocus />
        </label>
        <button type="submit">Sign in</button>
      </form>
    </Layout>
  );
}

export function ErrorPage(props: { principal?: Principal; csrf?: string; title: string; message: string }) {
  return (
    <Layout title={props.title} principal={props.principal} csrf={props.csrf}>
      <h1>{props.title}</h1>
      <p class="error" role="alert">
        {props.message}
      </p>
      <p>
        <a href="/console">Back to the console</a>
      </p>
    </Layout>
  );
}

export function Amount(props: { value: string | null }) {
  if (props.value === null) return <span class="muted">—</span>;
  return <span class={props.value.startsWith("-") ? "negative" : undefined}>{props.value}</span>;
}
