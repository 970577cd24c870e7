/**
 * The console's only stylesheet and script, served by tally itself (no CDN, works offline) so the
 * Content-Security-Policy can allow exactly 'self' and nothing inline. Colours keep a contrast of at least 4.5:1.
 */
export const CONSOLE_CSS = `
:root { color-scheme: light; --ink: #1a1a1a; --muted: #4a4a4a; --line: #c8c8c8; --accent: #0b57d0; --bad: #a50e0e; --good: #0d652d; }
* { box-sizing: border-box; }
body { font: 15px/1.45 system-ui, sans-serif; color: var(--ink); background: #fff; margin: 0; }
header { display: flex; gap: 1rem; align-items: center; padding: .6rem 1rem; border-bottom: 1px solid var(--line); }
header nav { flex: 1; display: flex; gap: 1rem; }
main { padding: 1rem; max-width: 72rem; }
a { color: var(--accent); }
a:focus, button:focus, input:focus, select:focus, summary:focus { outline: 3px solid #f9ab00; outline-offset: 2px; }
table { border-collapse: collapse; width: 100%; margin: .5rem 0 1rem; }
th, td { text-align: left; padding: .3rem .5rem; border-bottom: 1px solid var(--line); vertical-align: top; }
td.number, th.number { text-align: right; font-variant-numeric: tabular-nums; }
form.inline { display: flex; flex-wrap: wrap; gap: .6rem; align-items: end; margin: .5rem 0; }
label { display: flex; flex-direction: column; font-size: .85rem; color: var(--muted); gap: .15rem; }
input, select, button { font: inherit; padding: .3rem .5rem; border: 1px solid #767676; border-radius: 4px; }
button { background: var(--accent); color: #fff; border-color: var(--accent); cursor: pointer; }
button.secondary { background: #fff; color: var(--accent); }
.negative { color: var(--bad); }
.notice { padding: .5rem .8rem; border: 1px solid var(--good); color: var(--good); border-radius: 4px; }
.error { padding: .5rem .8rem; border: 1px solid var(--bad); color: var(--bad); border-radius: 4px; }
.status-depleted { color: var(--bad); font-weight: 600; }
.status-restored { color: var(--good); font-weight: 600; }
.muted { color: var(--muted); }
tr.batch-row td { background: #f3f3f3; }
.figures { display: flex; flex-wrap: wrap; gap: .5rem 2rem; margin: .5rem 0 1rem; }
.figures dt { font-size: .85rem; color: var(--muted); }
.figures dd { margin: 0; font-size: 1.25rem; font-weight: 600; }
.skip-link { position: absolute; left: -999px; top: 0; background: #fff; padding: .4rem .8rem; }
.skip-link:focus { left: .5rem; }
.visually-hidden { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); }
`;

/**
 * Live marking on the accounts page: follows the session's event stream (/console/events/stream, Server-Sent
 * Events; see live.ts) and marks rows as their accounts are depleted or restored. EventSource reconnects by itself
 * with Last-Event-ID after a stream ends; when the server refuses it (the session ended), it says so and stops.
 * Without JavaScript or EventSource the page is complete, only not live.
 */
export const LIVE_JS = `
"use strict";
(function () {
  var table = document.querySelector("[data-live-after]");
  var status = document.getElementById("live-status");
  if (!table || typeof EventSource === "undefined") return;
  var after = table.getAttribute("data-live-after");
  function mark(message) {
    var event = JSON.parse(message.data);
    var depleted = event.type === "balance_depleted";
    var cells = document.querySelectorAll("[data-status-for]");
    for (var i = 0; i < cells.length; i++) {
      if (cells[i].getAttribute("data-status-for") !== event.account_id) continue;
      cells[i].textContent = depleted ? "depleted" : "restored";
      cells[i].className = depleted ? "status-depleted" : "status-restored";
    }
    if (status) status.textContent = event.account_id + " " + (depleted ? "depleted" : "restored");
  }
  var source = new EventSource("/console/events/stream?after=" + encodeURIComponent(after));
  source.addEventListener("balance_depleted", mark);
  source.addEventListener("balance_restored", mark);
  source.addEventListener("open", function () { table.setAttribute("data-live", "connected"); });
  source.addEventListener("error", function () {
    if (source.readyState !== EventSource.CLOSED) return;
    table.setAttribute("data-live", "closed");
    if (status) status.textContent = "Live updates stopped; reload the page to resume.";
  });
})();
`;
