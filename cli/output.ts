/**
 * What the CLI prints and how: colour only where a person looks at a terminal (Node's own
 * `hasColors()`, which honours NO_COLOR, NODE_DISABLE_COLORS, FORCE_COLOR and TERM=dumb), JSON
 * lines for scripts, diffs as Added / Modified / Removed.
 */
import { styleText } from 'node:util';
import type { Change } from '../lib/index.js';

/** The styles the CLI uses. */
export type Style = 'red' | 'green' | 'yellow' | 'cyan' | 'dim' | 'bold';

/** A writable stream as the CLI needs it (a TTY stream has `isTTY` and `hasColors`). */
export interface OutStream {
  write(chunk: string): boolean;
  readonly isTTY?: boolean;
  hasColors?(): boolean;
}

/**
 * Whether to colour what goes to `stream`: `FORCE_COLOR` (not `0`) forces it, otherwise only a
 * TTY whose `hasColors()` agrees (that checks `NO_COLOR`, `NODE_DISABLE_COLORS`, `TERM=dumb`).
 * `NO_COLOR` wins over everything, as no-color.org asks.
 */
export function colourEnabled(stream: OutStream, env: NodeJS.ProcessEnv): boolean {
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== '') return false;
  const force = env.FORCE_COLOR;
  if (force !== undefined && force !== '') return force !== '0' && force !== 'false';
  return stream.isTTY === true && typeof stream.hasColors === 'function' && stream.hasColors();
}

/** One output stream with its colour decision. */
export class Printer {
  readonly stream: OutStream;
  readonly colour: boolean;

  constructor(stream: OutStream, env: NodeJS.ProcessEnv) {
    this.stream = stream;
    this.colour = colourEnabled(stream, env);
  }

  /** `text` in `style` when colour is on, plain otherwise. */
  style(style: Style, text: string): string {
    return this.colour ? styleText(style, text) : text;
  }

  /** Writes one line. */
  line(text = ''): void {
    this.stream.write(`${text}\n`);
  }

  /** Writes `value` as one JSON line (bigints as decimal strings). */
  json(value: unknown): void {
    this.line(toJson(value));
  }
}

/** JSON text with bigints as decimal strings; `indent` for people. */
export function toJson(value: unknown, indent?: number): string {
  return JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v), indent);
}

/** A path as people read it: `a.b[2]`, `(root)` for the whole value. */
export function pathText(path: readonly (string | number)[]): string {
  if (path.length === 0) return '(root)';
  let out = '';
  for (const p of path) {
    if (typeof p === 'number') out += `[${p}]`;
    else if (/^[A-Za-z_$][\w$]*$/.test(p)) out += out === '' ? p : `.${p}`;
    else out += `[${JSON.stringify(p)}]`;
  }
  return out;
}

/** The lines of a diff, coloured: `+ path: value`, `~ path: old → new`, `- path: old`. */
export function diffLines(out: Printer, changes: readonly Change[]): string[] {
  return changes.map((c) => {
    const path = pathText(c.path);
    switch (c.kind) {
      case 'Added':
        return out.style('green', `+ ${path}: ${toJson(c.value)}`);
      case 'Removed':
        return out.style('red', `- ${path}: ${toJson(c.oldValue)}`);
      case 'Modified':
        return out.style('yellow', `~ ${path}: ${toJson(c.oldValue)} → ${toJson(c.value)}`);
    }
  });
}

/** Milliseconds as people read them: `850 ms`, `12.3 s`, `4 min`, `2.5 h`. */
export function durationText(ms: number): string {
  if (ms < 1000) return `${Math.max(0, Math.round(ms))} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms < 3_600_000) return `${Math.round(ms / 60_000)} min`;
  return `${(ms / 3_600_000).toFixed(1)} h`;
}

/** Rows as aligned columns (the header styled bold). */
export function table(out: Printer, header: readonly string[], rows: readonly (readonly string[])[]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const pad = (cells: readonly string[]): string =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [out.style('bold', pad(header)), ...rows.map(pad)];
}
