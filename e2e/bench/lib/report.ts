/** Result rows, the console table and the Markdown rendering of a scenario. */

export interface Row {
  metric: string;
  unit?: string;
  kapitan: number | string | null;
  baseline: number | string | null;
  /** e.g. "≤ 1.5× baseline", "p99 ≤ 50 ms". */
  goal?: string;
  /** Whether the goal is met; undefined when the row has no goal. */
  met?: boolean | null;
}

export interface ScenarioResult {
  name: string;
  title: string;
  size: string;
  params: Record<string, unknown>;
  rows: Row[];
  notes: string[];
  durationS: number;
  error?: string;
  raw?: unknown;
}

export function ratio(r: Row): number | null {
  return typeof r.kapitan === 'number' && typeof r.baseline === 'number' && r.baseline !== 0 && Number.isFinite(r.kapitan) && Number.isFinite(r.baseline)
    ? r.kapitan / r.baseline
    : null;
}

export function fmt(v: number | string | null | undefined): string {
  if (v === null || v === undefined) return '–';
  if (typeof v === 'string') return v;
  if (!Number.isFinite(v)) return '–';
  const a = Math.abs(v);
  if (Number.isInteger(v)) return v.toLocaleString('en-US');
  if (a >= 1000) return Math.round(v).toLocaleString('en-US');
  if (a >= 100) return v.toFixed(0);
  if (a >= 10) return v.toFixed(1);
  if (a >= 1) return v.toFixed(2);
  if (a === 0) return '0';
  return v.toPrecision(2);
}

const metFmt = (m: boolean | null | undefined): string => (m === undefined ? '' : m === null ? '?' : m ? 'yes' : 'NO');

function cells(r: Row): string[] {
  const q = ratio(r);
  return [r.unit ? `${r.metric} (${r.unit})` : r.metric, fmt(r.kapitan), fmt(r.baseline), q === null ? '' : `${q.toFixed(2)}×`, r.goal ?? '', metFmt(r.met)];
}

const HEAD = ['metric', 'Kapitan', 'baseline', 'ratio', 'goal', 'met?'];

export function table(result: ScenarioResult): string {
  const rows = [HEAD, ...result.rows.map(cells)];
  const widths = HEAD.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const line = (r: string[]): string => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ');
  const out = [`== ${result.title} [${result.size}] (${result.durationS.toFixed(0)} s)`, line(rows[0]!), widths.map((w) => '-'.repeat(w)).join('-|-')];
  for (const r of rows.slice(1)) out.push(line(r));
  if (result.error) out.push(`ERROR: ${result.error}`);
  for (const n of result.notes) out.push(`  · ${n}`);
  return out.join('\n');
}

export function markdown(result: ScenarioResult): string {
  const esc = (s: string): string => s.replace(/\|/g, '\\|');
  const out = [`#### ${result.title}`, '', `| ${HEAD.join(' | ')} |`, `|${HEAD.map((_, i) => (i === 0 ? ':---' : '---:')).join('|')}|`];
  for (const r of result.rows) out.push(`| ${cells(r).map(esc).join(' | ')} |`);
  out.push('');
  if (result.error) out.push(`**Error:** ${esc(result.error)}`, '');
  for (const n of result.notes) out.push(`- ${n}`);
  if (result.notes.length) out.push('');
  return out.join('\n');
}
