/** Option types, their defaults (in one factory each) and validation that names the option. */
import { createHash } from 'node:crypto';
import type { BackendAddress, Logger } from './backend.js';
import { jsonCodec, validateCodec, type Codec } from './codec.js';
import { loadSchema, type SchemaName } from '../schemas/index.js';
import { validatorFor } from './schema.js';
import { SharedStructError } from './errors.js';
import { assertPlainJson } from './json.js';
import { validateNamespace } from './names.js';
import type { BackoffPolicy } from './retry.js';
import { debuglog } from 'node:util';
import { describeFields } from './util/describe.js';

/** Options of {@link connect}. All optional; see {@link defaultConnectOptions}. */
export interface ConnectOptions {
  /** Prefix of every key, `''` or `/a/b` (default `/sharedstruct`). `''` gives zkstate's layout. */
  readonly namespace?: string;
  /** Session / lease time to live (default 10000). After this long unreachable, the server may end the session. */
  readonly sessionTtlMs?: number;
  /** Deadline of the first connection (default 10000). */
  readonly connectTimeoutMs?: number;
  /**
   * Deadline of every single request to the store (default 5000). Neither client has one of its
   * own. Requests started within the same few milliseconds share one timer, so a deadline fires
   * up to 2 % (at most 50 ms) late, never early.
   */
  readonly requestTimeoutMs?: number;
  /** etcd user and password; ZooKeeper digest `username:password`. */
  readonly auth?: { readonly username: string; readonly password: string };
  /**
   * TLS to the store (etcd's https client URLs; ZooKeeper's `secureClientPort`). `true`: TLS, the server's
   * certificate checked against Node's root certificates; an object: see {@link TlsOptions};
   * `false` or absent: plain text.
   */
  readonly tls?: boolean | TlsOptions;
  /**
   * ZooKeeper: the ACL of every node the library creates (nodes that exist keep theirs).
   * `'creator'` (`CREATOR_ALL_ACL`): every identity of the creating session has all rights — its
   * digest `auth` and, under mutual TLS, its certificate; the default with `auth`. `'open'`
   * (`OPEN_ACL_UNSAFE`): anyone may do anything; the default without `auth`. Or a list of
   * {@link AclEntry}, e.g. the creator plus a read-only identity. etcd controls access with roles
   * on key prefixes instead (docs/SECURITY.md), so there `acl` rejects `UNSUPPORTED`; the
   * in-memory store has no access control and ignores it, as it ignores `auth` and `tls`.
   */
  readonly acl?: 'creator' | 'open' | readonly AclEntry[];
  /** Where the library logs (default: nothing below `warn`, to `console`). */
  readonly logger?: Logger;
  /** Overrides the backend's largest value, in bytes (etcd `--max-request-bytes`, ZooKeeper `jute.maxbuffer`). */
  readonly maxValueBytes?: number;
  /**
   * Tells the library the server's limit of operations per transaction (etcd `--max-txn-ops`,
   * default 128), which bounds how many fields one write of a `layout: 'fields'` struct may
   * change. ZooKeeper has no such limit.
   */
  readonly maxTxnOps?: number;
}

/**
 * One entry of a ZooKeeper ACL ({@link ConnectOptions.acl}).
 *
 * @example
 * ```ts
 * // The creator may do anything; the 'dashboard' identity may only read.
 * const acl = [
 *   { scheme: 'auth', id: '', perms: 'rwcda' },
 *   { scheme: 'digest', id: zooKeeperDigestId('dashboard', 'its-password'), perms: 'r' },
 * ] as const;
 * await connect('zk://zk1:2181', { auth: { username: 'writer', password: '…' }, acl });
 * ```
 */
export interface AclEntry {
  /**
   * `auth`: the creating session's own identities (`id` empty); `digest`: a digest identity,
   * `user:base64(sha1(user:password))` ({@link zooKeeperDigestId}); `x509`: a certificate's
   * subject (`CN=app`); `ip`: an address or CIDR; `world`: everyone (`id` 'anyone'); `sasl`.
   */
  readonly scheme: 'auth' | 'digest' | 'x509' | 'ip' | 'world' | 'sasl';
  readonly id: string;
  /** The rights, letters of `rwcda`: read, write (set data), create children, delete children, admin (set the ACL). */
  readonly perms: string;
}

const ACL_SCHEMES = ['auth', 'digest', 'x509', 'ip', 'world', 'sasl'] as const;

/**
 * The id of a ZooKeeper digest identity, for an {@link AclEntry}: `user:base64(sha1(user:password))`,
 * what the server derives from a session's digest `auth` (the password itself never goes in an ACL).
 */
export function zooKeeperDigestId(username: string, password: string): string {
  return `${username}:${createHash('sha1').update(`${username}:${password}`).digest('base64')}`;
}

/** Checks `acl` (and that a creator-based ACL has a creator identity: `auth` or a client certificate). */
function resolveAcl(acl: unknown, auth: unknown, tls: TlsOptions | undefined): ResolvedConnectOptions['acl'] {
  if (acl === undefined) return undefined;
  const hasIdentity = auth !== undefined || tls?.cert !== undefined;
  const noIdentity = "grants the creating session's identities, and it has none: give option 'auth' (or a TLS client certificate, 'tls.cert')";
  if (acl === 'open') return acl;
  if (acl === 'creator') {
    if (!hasIdentity) throw new SharedStructError('INVALID_ARGUMENT', `option 'acl' 'creator' ${noIdentity}`);
    return acl;
  }
  if (!Array.isArray(acl) || acl.length === 0) {
    throw new SharedStructError('INVALID_ARGUMENT', `option 'acl' must be 'creator', 'open' or a non-empty list of { scheme, id, perms }, got ${Array.isArray(acl) ? 'an empty list' : JSON.stringify(acl) ?? typeof acl}`);
  }
  return acl.map((entry: unknown, i) => {
    const e = checkObject(`option 'acl[${i}]'`, entry, ['scheme', 'id', 'perms']);
    if (!ACL_SCHEMES.includes(e.scheme as never)) throw new SharedStructError('INVALID_ARGUMENT', `option 'acl[${i}].scheme' must be one of ${ACL_SCHEMES.join(', ')}, got ${JSON.stringify(e.scheme)}`);
    if (typeof e.id !== 'string') throw new SharedStructError('INVALID_ARGUMENT', `option 'acl[${i}].id' must be a string`);
    if (typeof e.perms !== 'string' || !/^(?!.*(.).*\1)[rwcda]+$/.test(e.perms)) {
      throw new SharedStructError('INVALID_ARGUMENT', `option 'acl[${i}].perms' must be letters of 'rwcda' (read, write, create, delete, admin), each at most once, got ${JSON.stringify(e.perms)}`);
    }
    if (e.scheme === 'auth' && !hasIdentity) throw new SharedStructError('INVALID_ARGUMENT', `option 'acl[${i}]' (scheme 'auth') ${noIdentity}`);
    if (e.scheme === 'world' && e.id !== 'anyone') throw new SharedStructError('INVALID_ARGUMENT', `option 'acl[${i}].id' must be 'anyone' for scheme 'world'`);
    if (e.scheme === 'digest' && !/^[^:]+:[A-Za-z0-9+/]{27}=$/.test(e.id)) {
      throw new SharedStructError('INVALID_ARGUMENT', `option 'acl[${i}].id' must be 'user:base64(sha1(user:password))' for scheme 'digest' (zooKeeperDigestId(user, password) makes it; never the password itself)`);
    }
    return Object.freeze({ scheme: e.scheme as AclEntry['scheme'], id: e.id, perms: e.perms });
  });
}

/**
 * TLS material, as PEM text (a string or a Buffer of the file's content, not a path).
 *
 * @example
 * ```ts
 * import { readFileSync } from 'node:fs';
 * const client = await connect('etcd://10.0.0.5:2379', {
 *   tls: { ca: readFileSync('ca.pem'), cert: readFileSync('client.pem'), key: readFileSync('client-key.pem') },
 * });
 * ```
 * Bad material (no PEM certificate in `ca`, a key that does not match `cert`) rejects
 * `INVALID_ARGUMENT` naming the field before anything is sent; a server that refuses the
 * handshake rejects `CONNECTION` saying why.
 */
export interface TlsOptions {
  /** CA certificate(s) the server's certificate must chain to (a bundle may hold several). Default: Node's root certificates. */
  readonly ca?: string | Buffer;
  /** Client certificate (chain), for servers that require one (etcd `--client-cert-auth`, ZooKeeper `ssl.clientAuth=need`). Needs `key`. */
  readonly cert?: string | Buffer;
  /** The private key of `cert` (unencrypted PEM). Needs `cert`. */
  readonly key?: string | Buffer;
  /**
   * The name the server's certificate must carry, also sent as SNI. Default: the URL's host
   * (an IP address is checked against the certificate's IP entries and sent as no SNI).
   */
  readonly servername?: string;
  /** Check the server's certificate (default `true`). `false` accepts any: for tests only. */
  readonly rejectUnauthorized?: boolean;
}

const TLS_KEYS = ['ca', 'cert', 'key', 'servername', 'rejectUnauthorized'] as const;

/** Checks the shape of `tls` (the adapter checks the content: PEM, matching key). */
function resolveTls(tls: unknown): TlsOptions | undefined {
  if (tls === undefined || tls === false) return undefined;
  if (tls === true) return {};
  if (typeof tls !== 'object' || tls === null || Array.isArray(tls)) {
    throw new SharedStructError('INVALID_ARGUMENT', `option 'tls' must be true, false or { ca?, cert?, key?, servername?, rejectUnauthorized? }, got ${tls === null ? 'null' : Array.isArray(tls) ? 'an array' : typeof tls}`);
  }
  const t = checkObject("option 'tls'", tls, TLS_KEYS);
  for (const field of ['ca', 'cert', 'key'] as const) {
    const v = t[field];
    if (v !== undefined && typeof v !== 'string' && !Buffer.isBuffer(v)) {
      throw new SharedStructError('INVALID_ARGUMENT', `option 'tls.${field}' must be PEM text (a string or a Buffer), got ${typeof v}`);
    }
  }
  if ((t.cert === undefined) !== (t.key === undefined)) {
    throw new SharedStructError('INVALID_ARGUMENT', `option 'tls.${t.cert === undefined ? 'key' : 'cert'}' needs 'tls.${t.cert === undefined ? 'cert' : 'key'}' too (a client certificate and its private key go together)`);
  }
  if (t.servername !== undefined && (typeof t.servername !== 'string' || t.servername === '')) {
    throw new SharedStructError('INVALID_ARGUMENT', "option 'tls.servername' must be a non-empty string");
  }
  if (t.rejectUnauthorized !== undefined && typeof t.rejectUnauthorized !== 'boolean') {
    throw new SharedStructError('INVALID_ARGUMENT', "option 'tls.rejectUnauthorized' must be a boolean");
  }
  return Object.freeze({ ...t });
}

/** {@link ConnectOptions} with every default applied. @inline */
export interface ResolvedConnectOptions {
  readonly namespace: string;
  readonly sessionTtlMs: number;
  readonly connectTimeoutMs: number;
  readonly requestTimeoutMs: number;
  readonly auth: { readonly username: string; readonly password: string } | undefined;
  /** `undefined` for plain text; `{}` for `tls: true`. */
  readonly tls: TlsOptions | undefined;
  readonly acl: 'creator' | 'open' | readonly AclEntry[] | undefined;
  readonly logger: Logger;
  readonly maxValueBytes: number | undefined;
  readonly maxTxnOps: number | undefined;
}

const debugging = debuglog('sharedstruct').enabled;

/**
 * The default logger: warnings and errors to the console, one line each (errors as
 * `CODE: message`); debug and info dropped. With `NODE_DEBUG=sharedstruct` it logs every level,
 * and errors with their stacks and causes.
 */
export const consoleLogger: Logger = Object.freeze({
  debug(message: string, fields?: Record<string, unknown>) {
    if (debugging) console.debug(`[sharedstruct] ${message}`, fields ?? '');
  },
  info(message: string, fields?: Record<string, unknown>) {
    if (debugging) console.info(`[sharedstruct] ${message}`, fields ?? '');
  },
  warn(message: string, fields?: Record<string, unknown>) {
    if (debugging) console.warn(`[sharedstruct] ${message}`, fields ?? '');
    else console.warn(`[sharedstruct] ${message}${describeFields(fields)}`);
  },
  error(message: string, fields?: Record<string, unknown>) {
    if (debugging) console.error(`[sharedstruct] ${message}`, fields ?? '');
    else console.error(`[sharedstruct] ${message}${describeFields(fields)}`);
  },
});

/** The defaults of {@link ConnectOptions}, in one place. */
export function defaultConnectOptions(): ResolvedConnectOptions {
  return {
    namespace: '/sharedstruct',
    sessionTtlMs: 10_000,
    connectTimeoutMs: 10_000,
    requestTimeoutMs: 5_000,
    auth: undefined,
    tls: undefined,
    acl: undefined,
    logger: consoleLogger,
    maxValueBytes: undefined,
    maxTxnOps: undefined,
  };
}

function positiveInt(option: string, value: unknown, min = 1): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min) {
    throw new SharedStructError('INVALID_ARGUMENT', `option '${option}' must be an integer >= ${min}, got ${String(value)}`);
  }
  return value;
}

function checkObject(what: string, value: unknown, known: readonly string[]): Record<string, unknown> {
  if (value === undefined) return {};
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new SharedStructError('INVALID_ARGUMENT', `${what} must be an object`);
  }
  for (const key of Object.keys(value)) {
    if (!known.includes(key)) throw new SharedStructError('INVALID_ARGUMENT', `unknown option '${key}' in ${what}`);
  }
  return value as Record<string, unknown>;
}

/** Validates and defaults {@link ConnectOptions}; throws `INVALID_ARGUMENT` naming the option. */
export function resolveConnectOptions(options: unknown): ResolvedConnectOptions {
  const o = checkObject('connect options', options, [
    'namespace', 'sessionTtlMs', 'connectTimeoutMs', 'requestTimeoutMs', 'auth', 'tls', 'acl', 'logger', 'maxValueBytes', 'maxTxnOps',
  ]);
  const d = defaultConnectOptions();
  const auth = o.auth;
  if (auth !== undefined) {
    const a = checkObject("option 'auth'", auth, ['username', 'password']);
    if (typeof a.username !== 'string' || a.username === '' || typeof a.password !== 'string') {
      throw new SharedStructError('INVALID_ARGUMENT', "option 'auth' needs a non-empty string 'username' and a string 'password'");
    }
  }
  const logger = o.logger;
  if (logger !== undefined) {
    for (const m of ['debug', 'info', 'warn', 'error']) {
      if (typeof (logger as Record<string, unknown>)[m] !== 'function') {
        throw new SharedStructError('INVALID_ARGUMENT', `option 'logger' must have a '${m}' method`);
      }
    }
  }
  const tls = resolveTls(o.tls);
  return {
    namespace: o.namespace === undefined ? d.namespace : validateNamespace(o.namespace),
    sessionTtlMs: o.sessionTtlMs === undefined ? d.sessionTtlMs : positiveInt('sessionTtlMs', o.sessionTtlMs, 1000),
    connectTimeoutMs: o.connectTimeoutMs === undefined ? d.connectTimeoutMs : positiveInt('connectTimeoutMs', o.connectTimeoutMs),
    requestTimeoutMs: o.requestTimeoutMs === undefined ? d.requestTimeoutMs : positiveInt('requestTimeoutMs', o.requestTimeoutMs),
    auth: auth as ResolvedConnectOptions['auth'],
    tls,
    acl: resolveAcl(o.acl, auth, tls),
    logger: (logger as Logger | undefined) ?? d.logger,
    maxValueBytes: o.maxValueBytes === undefined ? undefined : positiveInt('maxValueBytes', o.maxValueBytes),
    maxTxnOps: o.maxTxnOps === undefined ? undefined : positiveInt('maxTxnOps', o.maxTxnOps),
  };
}

/** Options of `client.open()`. */
export interface OpenOptions<T> {
  /** The value to create the struct with when it does not exist. The first creator's `initial` wins. */
  readonly initial?: T;
  /**
   * A JSON Schema every value must satisfy: a schema object, or the name of one shipped in
   * `schemas/` (e.g. `'flags'`). Local writes that fail it reject `SCHEMA_VALIDATION`; remote
   * values that fail it are reported as `CORRUPT_REMOTE_VALUE` and skipped.
   */
  readonly schema?: object | SchemaName;
  /** Value codec: `jsonCodec` (default, bare JSON), `msgpackCodec`, or your own. */
  readonly codec?: Codec;
  /** `read()` throws `STALE_READ` when the cache was not confirmed for this long (default 30000). */
  readonly maxStalenessMs?: number;
  /** How often an idle cache is confirmed with a version-only check (default 5000). */
  readonly refreshIntervalMs?: number;
  /** Events a subscriber may leave unread before they are replaced by one `resync` (default 1024). */
  readonly maxBufferedEvents?: number;
  /** Backoff between `update()` retries (default: exponential with jitter, 2..200 ms). */
  readonly backoff?: BackoffPolicy;
  /**
   * This instance's id among the struct's listeners (`struct.listeners()`, the CLI), instead of
   * a random UUID: one name segment (`[A-Za-z0-9._-]`), unique among the live listeners of the
   * struct (a second open with a live label rejects `CONFLICT`; add the host or pid for replicas).
   */
  readonly label?: string;
  /** Plain JSON published with the listener registration as its `data` (default `{ host, pid }`). */
  readonly data?: unknown;
  /**
   * How the struct is stored (default `'value'`: the whole value in `<name>/payload`).
   * `'fields'`: a top-level object stored one key per top-level field, so a write and every
   * watcher's traffic cost the fields that changed (SPEC "Per-field layout"). Every instance of a
   * struct must use the layout it was created with: another rejects `INVALID_ARGUMENT`.
   */
  readonly layout?: 'value' | 'fields';
}

/** {@link OpenOptions} with defaults applied (`initial` and `schema` stay optional). @inline */
export interface ResolvedOpenOptions<T> {
  readonly initial: T | undefined;
  readonly hasInitial: boolean;
  readonly schema: object | undefined;
  readonly codec: Codec;
  readonly maxStalenessMs: number;
  readonly refreshIntervalMs: number;
  readonly maxBufferedEvents: number;
  readonly backoff: BackoffPolicy | undefined;
  readonly label: string | undefined;
  readonly data: unknown;
  readonly layout: 'value' | 'fields';
}

/** The defaults of {@link OpenOptions}, in one place. */
export function defaultOpenOptions(): Omit<ResolvedOpenOptions<never>, 'initial' | 'hasInitial' | 'schema' | 'backoff' | 'label' | 'data'> {
  return { codec: jsonCodec, maxStalenessMs: 30_000, refreshIntervalMs: 5_000, maxBufferedEvents: 1024, layout: 'value' };
}

const OPEN_KEYS = ['initial', 'schema', 'codec', 'maxStalenessMs', 'refreshIntervalMs', 'maxBufferedEvents', 'backoff', 'label', 'data', 'layout'] as const;

/** Validates and defaults {@link OpenOptions}; `extra` lists keys the caller handles itself. */
export function resolveOpenOptions<T>(options: unknown, extra: readonly string[] = []): ResolvedOpenOptions<T> {
  const o = checkObject('open options', options, [...OPEN_KEYS, ...extra]);
  const d = defaultOpenOptions();
  const codec = o.codec === undefined ? undefined : validateCodec(o.codec);
  let schema: object | undefined;
  if (typeof o.schema === 'string') schema = loadSchema(o.schema);
  else if (o.schema === undefined || (typeof o.schema === 'object' && o.schema !== null && !Array.isArray(o.schema))) schema = o.schema;
  else throw new SharedStructError('INVALID_ARGUMENT', "option 'schema' must be a JSON Schema object or the name of one in schemas/");
  if (schema) {
    try {
      validatorFor(schema); // compiled once here, so a broken schema fails the open, not a write
    } catch (err) {
      throw new SharedStructError('INVALID_ARGUMENT', `option 'schema' is not a valid JSON Schema: ${(err as Error).message}`, { cause: err });
    }
  }
  const backoff = o.backoff as BackoffPolicy | undefined;
  if (backoff !== undefined && typeof backoff?.delayMs !== 'function') {
    throw new SharedStructError('INVALID_ARGUMENT', "option 'backoff' must have a 'delayMs(attempt)' method");
  }
  const label = o.label;
  if (label !== undefined && (typeof label !== 'string' || !/^[A-Za-z0-9._-]{1,200}$/.test(label) || label === '.' || label === '..')) {
    throw new SharedStructError('INVALID_ARGUMENT', `option 'label' must be one name segment of A-Z a-z 0-9 . _ - (at most 200), got ${JSON.stringify(label)}`);
  }
  if (o.data !== undefined) assertPlainJson(o.data);
  if (o.layout !== undefined && o.layout !== 'value' && o.layout !== 'fields') {
    throw new SharedStructError('INVALID_ARGUMENT', `option 'layout' must be 'value' or 'fields', got ${JSON.stringify(o.layout)}`);
  }
  if (o.layout === 'fields' && 'initial' in o && o.initial !== undefined && (typeof o.initial !== 'object' || o.initial === null || Array.isArray(o.initial))) {
    throw new SharedStructError('INVALID_ARGUMENT', "option 'initial' must be an object with layout 'fields' (one key per top-level field)");
  }
  return {
    layout: o.layout ?? d.layout,
    initial: o.initial as T | undefined,
    hasInitial: 'initial' in o && o.initial !== undefined,
    schema,
    codec: codec ?? d.codec,
    maxStalenessMs: o.maxStalenessMs === undefined ? d.maxStalenessMs : positiveInt('maxStalenessMs', o.maxStalenessMs),
    refreshIntervalMs: o.refreshIntervalMs === undefined ? d.refreshIntervalMs : positiveInt('refreshIntervalMs', o.refreshIntervalMs),
    maxBufferedEvents: o.maxBufferedEvents === undefined ? d.maxBufferedEvents : positiveInt('maxBufferedEvents', o.maxBufferedEvents),
    backoff,
    label,
    data: o.data,
  };
}

/** Schemes `connect()` understands, by the adapter each loads. */
const SCHEMES = { memory: 'memory', etcd: 'etcd', zk: 'zk', zookeeper: 'zk' } as const;

/** A URL split into its parts, before its adapter checks them (see {@link AddressRules}). */
export interface UrlParts {
  /** The whole URL, for messages. */
  readonly url: string;
  /** `memory`, `etcd` or `zk` (`zookeeper://` is `zk`). */
  readonly scheme: 'memory' | 'etcd' | 'zk';
  /** What stands between `//` and the path: a host list, or a memory store's name. */
  readonly authority: string;
  /** The path, '' when none. */
  readonly path: string;
  readonly params: Readonly<Record<string, string>>;
}

/** What an adapter module declares about its URLs: it turns the parts into its address. */
export type AddressRules = (parts: UrlParts) => BackendAddress;

/**
 * Splits `scheme://authority[/path][?query]`. The scheme must be one we have an adapter for;
 * what the authority and path may hold is the adapter's rule ({@link AddressRules}). Host lists
 * are comma-separated, which `new URL` does not accept, so this parses by hand.
 */
export function parseUrl(url: unknown): UrlParts {
  if (typeof url !== 'string') throw new SharedStructError('INVALID_ARGUMENT', `url must be a string, got ${typeof url}`);
  const m = /^([a-z][a-z0-9+.-]*):\/\/([^/?#]*)([^?#]*)(?:\?([^#]*))?$/i.exec(url);
  if (!m) throw new SharedStructError('INVALID_ARGUMENT', `url '${url}' is not of the form scheme://hosts[/path]`);
  const scheme = m[1]!.toLowerCase();
  if (!(scheme in SCHEMES)) {
    throw new SharedStructError('INVALID_ARGUMENT', `url scheme '${scheme}' is not one of memory, etcd, zk`);
  }
  return {
    url,
    scheme: SCHEMES[scheme as keyof typeof SCHEMES],
    authority: m[2]!,
    path: m[3] ?? '',
    params: Object.fromEntries(new URLSearchParams(m[4] ?? '')),
  };
}

/**
 * The `host[:port]` list of a network store's URL, each with `defaultPort` filled in. Credentials
 * in the URL are refused: they would end up in logs.
 */
export function splitHosts(parts: UrlParts, defaultPort: number): string[] {
  const { url, authority } = parts;
  if (authority === '') throw new SharedStructError('INVALID_ARGUMENT', `url '${url}' names no host`);
  if (authority.includes('@')) {
    throw new SharedStructError('INVALID_ARGUMENT', `url '${url}': pass credentials with the 'auth' option, not in the URL`);
  }
  return authority.split(',').map((h) => {
    const hm = /^(\[[0-9a-f:]+\]|[A-Za-z0-9.-]+)(?::(\d{1,5}))?$/i.exec(h);
    const port = hm?.[2] === undefined ? undefined : Number(hm[2]);
    if (!hm || (port !== undefined && (port < 1 || port > 65535))) {
      throw new SharedStructError('INVALID_ARGUMENT', `url '${url}': '${h}' is not host[:port]`);
    }
    return `${hm[1]}:${port ?? defaultPort}`;
  });
}
