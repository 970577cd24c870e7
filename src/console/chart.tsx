import type { AccountStats } from "../ledger/history/stats.js";

const WIDTH = 720;
const HEIGHT = 160;
const PADDING = 24;

/**
 * Spent and earned per bucket as paired bars, drawn on the server as inline SVG (no script, no CSP exception).
 * Amounts are exact decimal strings everywhere else; here they only become bar heights, where a float is fine.
 * The same figures are in the table below the chart for screen readers and exact reading.
 */
export function StatsChart(props: { stats: AccountStats }) {
  const series = props.stats.series;
  const peak = Math.max(1e-9, ...series.map((bucket) => Math.max(Number(bucket.spent), Number(bucket.earned))));
  const slot = (WIDTH - PADDING * 2) / Math.max(1, series.length);
  const bar = Math.max(1, slot / 2 - 1);
  const scale = (value: string) => ((HEIGHT - PADDING * 2) * Number(value)) / peak;
  return (
    <svg
      role="img"
      aria-label={`Spent and earned per ${props.stats.interval} from ${props.stats.from.slice(0, 10)} to ${props.stats.to.slice(0, 10)}: spent ${props.stats.totals.spent}, earned ${props.stats.totals.earned}`}
      viewBox={`0 0 ${WIDTH} ${HEIGHT}`}
      width={WIDTH}
      height={HEIGHT}
    >
      <line x1={PADDING} y1={HEIGHT - PADDING} x2={WIDTH - PADDING} y2={HEIGHT - PADDING} stroke="#767676" />
      {series.map((bucket, index) => {
        const x = PADDING + index * slot;
        const spent = scale(bucket.spent);
        const earned = scale(bucket.earned);
        return (
          <g>
            <title>{`${bucket.start.slice(0, 10)}: spent ${bucket.spent}, earned ${bucket.earned}`}</title>
            <rect x={x} y={HEIGHT - PADDING - spent} width={bar} height={spent} fill="#a50e0e" />
            <rect x={x + bar + 1} y={HEIGHT - PADDING - earned} width={bar} height={earned} fill="#0d652d" />
          </g>
        );
      })}
      <text x={PADDING} y={14} font-size="12" fill="#1a1a1a">
        {`peak ${peak} · red: spent · green: earned`}
      </text>
    </svg>
  );
}
