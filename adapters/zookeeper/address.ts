/**
 * Addresses and keys on ZooKeeper: the `zk://` URL rules, the key rules (ZooKeeper's path
 * rules), and the chroot that maps a key to its znode path and back.
 */
import { SharedStructError } from '../../lib/errors.js';
import { splitHosts, type AddressRules } from '../../lib/options.js';

/** Validates an absolute key the way ZooKeeper validates a path (a sequential key may end in `/`). */
export function validateKey(key: string, sequential = false): void {
  const path = sequential && key.endsWith('/') ? `${key}0` : key;
  const ok =
    typeof key === 'string' &&
    path.startsWith('/') &&
    (path === '/' || !path.endsWith('/')) &&
    !path.includes('//') &&
    !path.includes('\u0000') &&
    !/\/\.\.?(\/|$)/.test(path);
  if (!ok) throw new SharedStructError('INVALID_ARGUMENT', `key ${JSON.stringify(key)} is not a valid ZooKeeper path`);
}

/** A URL's chroot: keys are paths below it (no chroot: keys are paths). */
export class Chroot {
  /** The chroot path without a trailing `/` ('' for none). */
  readonly path: string;

  constructor(path: string) {
    this.path = path;
  }

  /** The znode path of a key. */
  pathOf(key: string): string {
    if (!this.path) return key;
    return key === '/' ? this.path : this.path + key;
  }

  /** The key of a znode path. */
  keyOf(path: string): string {
    if (!this.path) return path;
    const rest = path.slice(this.path.length);
    return rest === '' ? '/' : rest;
  }
}

/** A chroot segment: what a namespace segment may be (lib/names.ts), so chroot and namespace read alike. */
const CHROOT_SEGMENT = /^[A-Za-z0-9._-]+$/;

/**
 * `zk://h1[:2181],h2[:2181][/chroot]`: hosts with ZooKeeper's default port, the path a chroot
 * (trailing `/` dropped; segments of `[A-Za-z0-9._-]`, no `.` or `..`). No query parameters and
 * no IPv6 literals: node-zookeeper-client splits each host at its first `:`.
 */
export const addressRules: AddressRules = (parts) => {
  const hosts = splitHosts(parts, 2181);
  const url = parts.url;
  const ipv6 = hosts.find((h) => h.startsWith('['));
  if (ipv6 !== undefined) {
    throw new SharedStructError(
      'INVALID_ARGUMENT',
      `url '${url}': '${ipv6}' is an IPv6 literal, which node-zookeeper-client cannot connect to; use a host name that resolves to it`,
    );
  }
  const params = Object.keys(parts.params);
  if (params.length > 0) {
    throw new SharedStructError(
      'INVALID_ARGUMENT',
      `url '${url}': zk:// URLs take no query parameters (got ${params.map((p) => `'${p}'`).join(', ')}); pass options to connect()`,
    );
  }
  const chroot = parts.path.replace(/\/+$/, '');
  if (chroot !== '') {
    if (chroot.length > 200) throw new SharedStructError('INVALID_ARGUMENT', `url '${url}': the chroot is longer than 200 characters`);
    for (const segment of chroot.slice(1).split('/')) {
      const bad =
        segment === ''
          ? 'an empty segment'
          : segment === '.' || segment === '..'
            ? `the segment '${segment}'`
            : CHROOT_SEGMENT.test(segment)
              ? undefined
              : `the segment '${segment}' (allowed: A-Z a-z 0-9 . _ -)`;
      if (bad) throw new SharedStructError('INVALID_ARGUMENT', `url '${url}': the chroot '${chroot}' has ${bad}`);
    }
  }
  return { scheme: 'zk', hosts, path: chroot, params: {} };
};
