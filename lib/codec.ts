/** Codecs turn struct values into stored bytes and back. */

/** A value codec. `name` is recorded with the struct so a reader with another codec can tell. */
export interface Codec {
  readonly name: string;
  encode(value: unknown): Uint8Array;
  /** Throws on bytes it cannot decode; the core reports `CORRUPT_REMOTE_VALUE`. */
  decode(bytes: Uint8Array): unknown;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

/** JSON as UTF-8: the default, and what zkstate and other raw clients read and write. */
export const jsonCodec: Codec = Object.freeze({
  name: 'json',
  encode(value: unknown): Uint8Array {
    return encoder.encode(JSON.stringify(value));
  },
  decode(bytes: Uint8Array): unknown {
    return JSON.parse(decoder.decode(bytes)) as unknown;
  },
});
