/**
 * A small JSON-lines logger: one object per line on stderr,
 * `{"time":…,"level":…,"msg":…, ...fields}`. Secrets never reach it: fields
 * whose name looks like a secret are replaced by "[redacted]".
 */

export const LOG_LEVELS = ['debug', 'info', 'warn', 'error', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };

export type LogFields = Record<string, unknown>;

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  /** A logger that adds `fields` to every line. */
  child(fields: LogFields): Logger;
  isEnabled(level: LogLevel): boolean;
}

export interface LoggerOptions {
  level?: LogLevel;
  /** Where lines go; default process.stderr. */
  write?: (line: string) => void;
  fields?: LogFields;
}

const SECRET_KEY = /credential|token|password|secret|authorization|^auth$/i;

function sanitize(value: unknown, depth = 0): unknown {
  if (value instanceof Error) {
    const out: LogFields = { name: value.name, message: value.message };
    const code = (value as { code?: unknown }).code;
    if (code !== undefined) out.code = code;
    return out;
  }
  if (value === null || typeof value !== 'object' || depth > 4) return value;
  if (Array.isArray(value)) return value.map((v) => sanitize(v, depth + 1));
  const out: LogFields = {};
  for (const [k, v] of Object.entries(value)) out[k] = SECRET_KEY.test(k) ? '[redacted]' : sanitize(v, depth + 1);
  return out;
}

export function parseLogLevel(value: string | undefined, fallback: LogLevel = 'info'): LogLevel {
  if (value === undefined || value === '') return fallback;
  const v = value.toLowerCase();
  if ((LOG_LEVELS as readonly string[]).includes(v)) return v as LogLevel;
  throw new Error(`invalid log level "${value}" (one of ${LOG_LEVELS.join(', ')})`);
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const level = options.level ?? 'info';
  const write = options.write ?? ((line: string) => void process.stderr.write(line));
  const base = options.fields ?? {};
  const make = (fields: LogFields): Logger => {
    const log = (lvl: Exclude<LogLevel, 'silent'>, msg: string, extra?: LogFields): void => {
      if (RANK[lvl] < RANK[level]) return;
      const entry = sanitize({ time: new Date().toISOString(), level: lvl, msg, ...fields, ...extra });
      let line: string;
      try {
        line = JSON.stringify(entry);
      } catch {
        line = JSON.stringify({ time: new Date().toISOString(), level: lvl, msg });
      }
      write(line + '\n');
    };
    return {
      debug: (m, f) => log('debug', m, f),
      info: (m, f) => log('info', m, f),
      warn: (m, f) => log('warn', m, f),
      error: (m, f) => log('error', m, f),
      child: (f) => make({ ...fields, ...f }),
      isEnabled: (l) => RANK[l] >= RANK[level] && level !== 'silent',
    };
  };
  return make(base);
}

/** A logger that drops everything (tests, simulated agents). */
export const silentLogger: Logger = createLogger({ level: 'silent' });
