// Controller logs: one line an event, human-readable by default, one JSON
// object a line with --log-format json. Every line names its event so logs
// can be filtered (health, apply, drift, reload, drain, metrics …).
export const LOG_FORMATS = ['text', 'json'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];
export type Level = 'info' | 'warn' | 'error';
export type Fields = Record<string, string | number | boolean | undefined | string[]>;

export interface Logger {
  log(level: Level, event: string, message: string, fields?: Fields): void;
}

export function createLogger(format: LogFormat, write: (line: string) => void = (l) => process.stderr.write(l)): Logger {
  return {
    log(level, event, message, fields = {}) {
      const time = new Date().toISOString();
      if (format === 'json') {
        const clean: Fields = {};
        for (const [k, v] of Object.entries(fields)) if (v !== undefined) clean[k] = v;
        write(`${JSON.stringify({ time, level, event, msg: message, ...clean })}\n`);
        return;
      }
      const extra = Object.entries(fields)
        .filter(([, v]) => v !== undefined)
        .map(([k, v]) => `${k}=${Array.isArray(v) ? v.join(',') : typeof v === 'string' && /\s/.test(v) ? JSON.stringify(v) : String(v)}`)
        .join(' ');
      write(`${time} ${level.padEnd(5)} ${event}: ${message}${extra ? `  ${extra}` : ''}\n`);
    },
  };
}
