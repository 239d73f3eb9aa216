/**
 * TLS for the adapters that speak it (etcd's gRPC channels, ZooKeeper's socket): the content of
 * `options.tls` (its shape is checked by lib/options.ts) is parsed here, before any connection,
 * so bad material fails `connect()` at once with `INVALID_ARGUMENT` naming the field, instead of
 * a handshake that fails on every attempt until the deadline. Node's `createSecureContext` alone
 * would not do: it ignores a `ca` that holds no certificate at all. Also how a handshake failure
 * is told and explained, the same way for both stores.
 */
import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import { createSecureContext, type SecureContext } from 'node:tls';
import type { TlsOptions } from '../options.js';
import { SharedStructError } from '../errors.js';

/** TLS material, validated and compiled once per backend by {@link tlsParams}. */
export interface TlsParams {
  readonly secureContext: SecureContext;
  /** SNI and the name the server certificate must carry; default: the endpoint's host. */
  readonly servername?: string | undefined;
  readonly rejectUnauthorized: boolean;
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;

function invalid(field: string, problem: string, cause?: unknown): SharedStructError {
  return new SharedStructError('INVALID_ARGUMENT', `option 'tls.${field}' ${problem}`, cause === undefined ? {} : { cause });
}

function text(value: string | Uint8Array): string {
  return typeof value === 'string' ? value : Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('utf8');
}

/** Every certificate of a PEM bundle, parsed; at least one. */
function certificates(field: 'ca' | 'cert', value: string | Uint8Array): X509Certificate[] {
  const blocks = text(value).match(PEM_CERTIFICATE) ?? [];
  if (blocks.length === 0) {
    throw invalid(field, "holds no PEM certificate (expected '-----BEGIN CERTIFICATE-----' blocks; give the file's content, not its path)");
  }
  return blocks.map((block, i) => {
    try {
      return new X509Certificate(block);
    } catch (err) {
      throw invalid(field, `certificate ${i + 1} of ${blocks.length} is not a valid X.509 certificate: ${(err as Error).message}`, err);
    }
  });
}

function privateKey(value: string | Uint8Array): KeyObject {
  const pem = text(value);
  if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(pem)) {
    throw invalid('key', "holds no PEM private key (expected a '-----BEGIN ... PRIVATE KEY-----' block; give the file's content, not its path)");
  }
  try {
    return createPrivateKey(pem);
  } catch (err) {
    throw invalid('key', `is not a usable private key (an encrypted key is not supported): ${(err as Error).message}`, err);
  }
}

function buffer(value: string | Uint8Array): Buffer {
  return typeof value === 'string' ? Buffer.from(value, 'utf8') : Buffer.from(value.buffer, value.byteOffset, value.byteLength);
}

/**
 * Validates the TLS material and compiles it into the context every connection of the backend
 * uses. Undefined: plain text. Without `ca`, the server's certificate is checked against Node's
 * root certificates.
 */
export function tlsParams(tls: TlsOptions | undefined): TlsParams | undefined {
  if (tls === undefined) return undefined;
  if (tls.ca !== undefined) certificates('ca', tls.ca);
  if (tls.cert !== undefined) {
    const chain = certificates('cert', tls.cert);
    const key = privateKey(tls.key!); // lib/options.ts requires key and cert together
    if (!chain[0]!.checkPrivateKey(key)) throw invalid('key', "does not belong to the first certificate of 'tls.cert'");
  }
  let secureContext;
  try {
    secureContext = createSecureContext({
      ...(tls.ca !== undefined && { ca: buffer(tls.ca) }),
      ...(tls.cert !== undefined && { cert: buffer(tls.cert) }),
      ...(tls.key !== undefined && { key: buffer(tls.key) }),
    });
  } catch (err) {
    throw new SharedStructError('INVALID_ARGUMENT', `option 'tls' could not be used: ${(err as Error).message}`, { cause: err });
  }
  return { secureContext, servername: tls.servername, rejectUnauthorized: tls.rejectUnauthorized ?? true };
}

/** Node's TLS errors (certificate checks, handshake alerts). */
export function isTlsError(err: unknown): err is Error & { code?: string } {
  const code = (err as { code?: unknown } | null)?.code;
  return err instanceof Error && typeof code === 'string' && /^(ERR_SSL_|ERR_TLS_|UNABLE_TO_|CERT_|DEPTH_ZERO|SELF_SIGNED|HOSTNAME_MISMATCH)/.test(code);
}

/**
 * A TLS error in words: OpenSSL's reason ("sslv3 alert bad certificate") rather than its whole
 * line with the error queue, source file and a trailing newline.
 */
export function tlsReason(err: Error): string {
  return /SSL routines:[^:]*:([^:]+)/.exec(err.message)?.[1]?.trim() ?? err.message.trim();
}

/** How a store is set up for TLS, for {@link tlsHint}'s advice. */
export interface TlsServerTerms {
  /** How the server is made to serve TLS (etcd: "an etcd started with --cert-file (https:// client URLs)"). */
  readonly serving: string;
  /** Where the server's trusted CAs for client certificates are configured. */
  readonly trustedCa: string;
}

/** What to check after a TLS failure, from its reason. */
export function tlsHint(reason: string, server: TlsServerTerms): string {
  if (/wrong version number|packet length too long|http request|disconnected before secure TLS/i.test(reason)) {
    return `Is this endpoint serving TLS? Use option 'tls' only with ${server.serving}.`;
  }
  if (/alert (certificate required|bad certificate|unknown ca|certificate unknown|handshake failure)/i.test(reason)) {
    return `The server refused our client certificate: options 'tls.cert' and 'tls.key' must hold a certificate signed by a CA in ${server.trustedCa}.`;
  }
  if (/altname|hostname|IP: /i.test(reason)) {
    return "The server's certificate does not name this host: give the name it carries as option 'tls.servername', or use a host it names in the URL.";
  }
  return "Option 'tls.ca' must hold the CA that signed the server's certificate.";
}
