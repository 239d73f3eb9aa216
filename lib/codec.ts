/**
 * Codecs turn struct values into stored bytes and back, and the stored bytes record which codec
 * wrote them, so a reader with another codec reports `CORRUPT_REMOTE_VALUE` instead of garbage
 * (MessagePack happily decodes the JSON text `7` as the number 55).
 *
 * Framing: the JSON codec writes the bare JSON text, exactly what zkstate and any raw client
 * read and write. Every other codec's bytes start with a header `00 'S' 'S' 'C' 01 <len> <name>`;
 * a JSON text never starts with a 0x00 byte, so the two can never be confused.
 */
import { encode as msgpackEncode, decode as msgpackDecode } from '@msgpack/msgpack';
import { SharedStructError } from './errors.js';

/** A value codec. `name` is recorded with every value this codec writes (except `json`). */
export interface Codec {
  /** `[A-Za-z0-9._-]{1,64}`; `json` is the built-in bare-JSON codec. */
  readonly name: string;
  /** Encodes a plain JSON value (already checked) into the bytes stored in the payload. */
  encode(value: unknown): Uint8Array;
  /** Throws on bytes it cannot decode; the core reports `CORRUPT_REMOTE_VALUE`. */
  decode(bytes: Uint8Array): unknown;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

/** JSON as UTF-8, stored bare: the default, and what zkstate and raw clients read and write. */
export const jsonCodec: Codec = Object.freeze({
  name: 'json',
  encode(value: unknown): Uint8Array {
    return encoder.encode(JSON.stringify(value));
  },
  decode(bytes: Uint8Array): unknown {
    return JSON.parse(decoder.decode(bytes)) as unknown;
  },
});

/**
 * MessagePack (`@msgpack/msgpack`): smaller and faster to decode than JSON for numeric data.
 * Values are still plain JSON. A key named `__proto__` is refused at encode time, because the
 * decoder refuses it and the value could never be read back.
 */
export const msgpackCodec: Codec = Object.freeze({
  name: 'msgpack',
  encode(value: unknown): Uint8Array {
    const path = findProtoKey(value, []);
    if (path) {
      throw new SharedStructError('INVALID_VALUE', `the msgpack codec cannot store a key named __proto__ (at ${path.join('.')})`, {
        details: { path },
      });
    }
    return msgpackEncode(value);
  },
  decode(bytes: Uint8Array): unknown {
    return msgpackDecode(bytes);
  },
});

function findProtoKey(value: unknown, path: (string | number)[]): (string | number)[] | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const p = findProtoKey(value[i], [...path, i]);
      if (p) return p;
    }
    return undefined;
  }
  for (const [k, v] of Object.entries(value)) {
    if (k === '__proto__') return [...path, k];
    const p = findProtoKey(v, [...path, k]);
    if (p) return p;
  }
  return undefined;
}

const MAGIC = [0x00, 0x53, 0x53, 0x43, 0x01] as const; // \0 S S C, format 1
const CODEC_NAME = /^[A-Za-z0-9._-]{1,64}$/;

/** Throws `INVALID_ARGUMENT` unless `codec` is a usable {@link Codec}. */
export function validateCodec(codec: unknown): Codec {
  const c = codec as Partial<Codec> | null;
  if (typeof c !== 'object' || c === null || typeof c.encode !== 'function' || typeof c.decode !== 'function' || typeof c.name !== 'string') {
    throw new SharedStructError('INVALID_ARGUMENT', "option 'codec' must have 'name', 'encode' and 'decode'");
  }
  if (!CODEC_NAME.test(c.name)) {
    throw new SharedStructError('INVALID_ARGUMENT', `option 'codec': name '${c.name}' must match ${CODEC_NAME.source}`);
  }
  return c as Codec;
}

/** Encodes `value` with `codec` and frames it with the codec's name (bare for `json`). */
export function encodeFramed(codec: Codec, value: unknown): Uint8Array {
  const body = codec.encode(value);
  if (codec.name === 'json') return body;
  const name = encoder.encode(codec.name);
  const out = new Uint8Array(MAGIC.length + 1 + name.length + body.length);
  out.set(MAGIC, 0);
  out[MAGIC.length] = name.length;
  out.set(name, MAGIC.length + 1);
  out.set(body, MAGIC.length + 1 + name.length);
  return out;
}

/** The codec name recorded in `bytes` (`json` for bare JSON), and where its body starts. */
export function readFrame(bytes: Uint8Array): { name: string; offset: number } {
  if (bytes.length >= MAGIC.length + 1 && MAGIC.every((b, i) => bytes[i] === b)) {
    const len = bytes[MAGIC.length]!;
    const start = MAGIC.length + 1;
    if (bytes.length >= start + len) {
      try {
        return { name: decoder.decode(bytes.subarray(start, start + len)), offset: start + len };
      } catch {
        // fall through: not a valid header
      }
    }
    return { name: '(unreadable header)', offset: bytes.length };
  }
  return { name: 'json', offset: 0 };
}

/**
 * Decodes framed bytes with `codec`. Throws `CORRUPT_REMOTE_VALUE` when they were written by
 * another codec, and lets the codec's own error through (the caller wraps it) when they are bad.
 */
export function decodeFramed(codec: Codec, bytes: Uint8Array): unknown {
  const { name, offset } = readFrame(bytes);
  if (name !== codec.name) {
    throw new SharedStructError(
      'CORRUPT_REMOTE_VALUE',
      `the value was written with codec '${name}' but this instance reads with '${codec.name}'`,
    );
  }
  return codec.decode(offset === 0 ? bytes : bytes.subarray(offset));
}

/**
 * False only when `bytes` certainly hold no object key named `''`: bare JSON in which the byte
 * sequence `"":` does not occur (JSON.stringify writes an empty key exactly so). Other codecs: true.
 */
export function mayHaveEmptyKey(bytes: Uint8Array): boolean {
  if (readFrame(bytes).name !== 'json') return true;
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).indexOf(EMPTY_KEY) >= 0;
}

const EMPTY_KEY = Buffer.from('"":');
