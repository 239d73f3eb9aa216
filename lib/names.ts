/** The naming rule of SPEC.md for structs, locks, elections and groups, and for the namespace. */
import { SharedStructError } from './errors.js';

const SEGMENT = /^[A-Za-z0-9._-]+$/;
/** Longest name, in characters. */
const MAX_NAME_LENGTH = 200;
/** Segments the store layout uses under a struct: a name must not contain them, or two structs could overlap. */
const RESERVED_SEGMENTS = new Set(['payload', 'listeners', 'write_lock', 'queue', 'claims', 'dead', 'replies', 'fields']);

function badSegment(segment: string): string | undefined {
  if (segment === '') return 'an empty segment';
  if (segment === '.' || segment === '..') return `the segment '${segment}'`;
  if (!SEGMENT.test(segment)) return `the segment '${segment}' (allowed: A-Z a-z 0-9 . _ -)`;
  return undefined;
}

/**
 * Validates a struct, lock, election or group name: `/`-separated segments of
 * `[A-Za-z0-9._-]`, no empty segment, no `.` or `..`, at most 200 characters. A multi-segment
 * name may not use the layout's own segments (`payload`, `listeners`, `write_lock`, and for
 * durable servers and the per-field layout `queue`, `claims`, `dead`, `replies`, `fields`) after its
 * first segment, nor start with `_` (reserved for `_locks`, `_elections`, `_groups`).
 */
export function validateName(name: unknown, what = 'name'): string {
  if (typeof name !== 'string') throw new SharedStructError('INVALID_NAME', `${what} must be a string, got ${typeof name}`);
  if (name.length === 0) throw new SharedStructError('INVALID_NAME', `${what} must not be empty`);
  if (name.length > MAX_NAME_LENGTH) {
    throw new SharedStructError('INVALID_NAME', `${what} is ${name.length} characters long; at most ${MAX_NAME_LENGTH}`);
  }
  const segments = name.split('/');
  for (const [i, segment] of segments.entries()) {
    const bad = badSegment(segment);
    if (bad) throw new SharedStructError('INVALID_NAME', `${what} '${name}' has ${bad}`);
    if (i > 0 && RESERVED_SEGMENTS.has(segment)) {
      throw new SharedStructError('INVALID_NAME', `${what} '${name}' uses the reserved segment '${segment}'`);
    }
  }
  if (segments[0]!.startsWith('_')) {
    throw new SharedStructError('INVALID_NAME', `${what} '${name}' starts with '_', which is reserved for the library's own keys`);
  }
  return name;
}

/** Validates a namespace: `''` or `/seg/seg...` with the segment rule; a trailing `/` is dropped. */
export function validateNamespace(namespace: unknown): string {
  if (typeof namespace !== 'string') {
    throw new SharedStructError('INVALID_ARGUMENT', `option 'namespace' must be a string, got ${typeof namespace}`);
  }
  const ns = namespace.endsWith('/') ? namespace.slice(0, -1) : namespace;
  if (ns === '') return '';
  if (!ns.startsWith('/')) throw new SharedStructError('INVALID_ARGUMENT', `option 'namespace' must start with '/' (got '${namespace}')`);
  if (ns.length > MAX_NAME_LENGTH) throw new SharedStructError('INVALID_ARGUMENT', `option 'namespace' is longer than ${MAX_NAME_LENGTH} characters`);
  for (const segment of ns.slice(1).split('/')) {
    const bad = badSegment(segment);
    if (bad) throw new SharedStructError('INVALID_ARGUMENT', `option 'namespace' '${namespace}' has ${bad}`);
  }
  return ns;
}
