/**
 * The content of `options.tls` (its shape is checked by lib/options.ts): PEM certificates and
 * keys are parsed here, before any connection, so bad material fails `connect()` at once with
 * `INVALID_ARGUMENT` naming the field, instead of a handshake that fails on every attempt until
 * the deadline. Node's `createSecureContext` alone would not do: it ignores a `ca` that holds no
 * certificate at all.
 */
import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import type { TlsOptions } from '../../lib/options.js';
import { SharedStructError } from '../../lib/errors.js';
import { tlsContext, type TlsParams } from './channel.js';

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
    secureContext = tlsContext({
      ...(tls.ca !== undefined && { ca: buffer(tls.ca) }),
      ...(tls.cert !== undefined && { cert: buffer(tls.cert) }),
      ...(tls.key !== undefined && { key: buffer(tls.key) }),
    });
  } catch (err) {
    throw new SharedStructError('INVALID_ARGUMENT', `option 'tls' could not be used: ${(err as Error).message}`, { cause: err });
  }
  return { secureContext, servername: tls.servername, rejectUnauthorized: tls.rejectUnauthorized ?? true };
}
