/**
 * `KEY=value` text, one pair a line, as typed in the run form (env, labels) and
 * the machine label editor. Blank lines and lines starting with `#` are skipped;
 * the value is everything after the first `=` (it may contain `=` and spaces).
 */
export interface KeyValueParse {
  values: Record<string, string>;
  /** `line 3: …` for each line that is not a pair. */
  errors: string[];
}

export function parseKeyValueLines(text: string, what = 'KEY=value'): KeyValueParse {
  const values: Record<string, string> = {};
  const errors: string[] = [];
  const lines = text.split(/\r?\n/);
  lines.forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const eq = raw.indexOf('=');
    if (eq <= 0 || raw.slice(0, eq).trim() === '') {
      errors.push(`line ${i + 1}: expected ${what}`);
      return;
    }
    const key = raw.slice(0, eq).trim();
    if (Object.prototype.hasOwnProperty.call(values, key)) {
      errors.push(`line ${i + 1}: "${key}" is given twice`);
      return;
    }
    values[key] = raw.slice(eq + 1);
  });
  return { values, errors };
}

export function formatKeyValueLines(values: Record<string, string> | null | undefined): string {
  return Object.entries(values ?? {})
    .map(([k, v]) => `${k}=${v}`)
    .join('\n');
}

/** Non-empty lines, as typed (one argument per line). */
export function parseLines(text: string): string[] {
  const lines = text.split(/\r?\n/);
  while (lines.length && lines[lines.length - 1] === '') lines.pop();
  return lines.filter((l) => l.trim() !== '');
}

/** Whether a machine's labels include every `k=v` of a selector. */
export function labelsMatch(labels: Record<string, string>, selector: Record<string, string>): boolean {
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}
