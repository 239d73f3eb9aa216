/** One-line descriptions of errors and log fields, for messages and the default logger. */
import { SharedStructError } from '../errors.js';

/** `CODE: message` for our errors, `Name: message` for others, `String(x)` for non-errors. */
export function describeError(err: unknown): string {
  if (err instanceof SharedStructError) return `${err.code}: ${err.message}`;
  if (err instanceof Error) return `${err.name}: ${err.message}`;
  return String(err);
}

/** Log fields as ` key=value` pairs on one line; errors as {@link describeError}. */
export function describeFields(fields: Record<string, unknown> | undefined): string {
  if (!fields) return '';
  let out = '';
  for (const [key, value] of Object.entries(fields)) {
    if (value === undefined) continue;
    const text = value instanceof Error ? describeError(value) : typeof value === 'string' ? value : safeJson(value);
    out += ` ${key}=${text}`;
  }
  return out;
}

function safeJson(value: unknown): string {
  try {
    return JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)) ?? String(value);
  } catch {
    return String(value);
  }
}
