/** Schemas on the memory backend: named schemas, remote validation, and schema evolution. */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { connect, msgpackCodec, schemaNames, type Client, type SharedStructError } from '../../lib/index.js';
import { eventually, Recorder } from '../contract/struct.suite.js';

describe('[memory] schemas and codecs', function () {
  let url: string;
  const clients: Client[] = [];
  const open = async (): Promise<Client> => {
    const c = await connect(url);
    clients.push(c);
    return c;
  };
  beforeEach(() => {
    url = `memory://schema-${randomUUID().slice(0, 8)}`;
  });
  afterEach(async () => {
    await Promise.allSettled(clients.splice(0).map((c) => c.close()));
  });

  it('ships the schemas of the examples and of our own records', () => {
    assert.deepEqual(schemaNames(), ['agent-config', 'flags', 'listener-registration', 'lock-payload', 'worker-state']);
  });

  it('a remote value that fails the schema is an error event; the next valid one recovers', async () => {
    const a = await open();
    const b = await open();
    const typed = await a.open('cfg', { schema: 'agent-config', initial: { processes: ['systemd*'], intervalMs: 1000 } });
    const untyped = await b.open<Record<string, unknown>>('cfg');
    const rec = new Recorder(typed);
    const errors: SharedStructError[] = [];
    typed.on('error', (e) => errors.push(e));
    await untyped.update((d) => void (d.intervalMs = 'often'));
    await eventually('error event', () => errors.length === 1);
    assert.equal(errors[0]!.code, 'CORRUPT_REMOTE_VALUE');
    assert.match(errors[0]!.message, /fails its schema/);
    assert.equal(typed.read().intervalMs, 1000);
    assert.equal(typed.stat().version, 1);
    await untyped.update((d) => void (d.intervalMs = 500));
    await eventually('recovered', () => typed.readDirty().intervalMs === 500);
    assert.deepEqual(rec.events.map((e) => [e.version, e.origin, e.coalesced]), [[3, 'resync', true]]);
    assert.deepEqual(rec.fold(), { processes: ['systemd*'], intervalMs: 500 });
  });

  it('opening a struct whose stored value fails the schema rejects CORRUPT_REMOTE_VALUE', async () => {
    const a = await open();
    await a.open('cfg', { initial: { processes: 'not-a-list', intervalMs: 1 } });
    await assert.rejects(a.open('cfg', { schema: 'agent-config' }), { code: 'CORRUPT_REMOTE_VALUE' });
  });

  describe('schema evolution', () => {
    const v1 = {
      type: 'object',
      properties: { name: { type: 'string' } },
      required: ['name'],
    };
    const v2Optional = {
      type: 'object',
      properties: { name: { type: 'string' }, color: { type: 'string', default: 'blue' } },
      required: ['name'],
    };
    const v2Required = { ...v2Optional, required: ['name', 'color'] };

    it('a new optional field (with a default): old values stay valid, the default is not written in', async () => {
      const a = await open();
      const old = await a.open<{ name: string; color?: string }>('thing', { schema: v1, initial: { name: 'x' } });
      const b = await open();
      const next = await b.open<{ name: string; color?: string }>('thing', { schema: v2Optional });
      assert.deepEqual(next.read(), { name: 'x' }, 'defaults are documentation: no value is invented on read');
      await next.update((d) => void (d.color = 'red'));
      await eventually('old reader sees the new field', () => old.readDirty().color === 'red');
      await old.update((d) => void (d.name = 'y'));
      await eventually('new reader sees the old writer', () => next.readDirty().name === 'y');
      assert.deepEqual(next.read(), { name: 'y', color: 'red' });
    });

    it('a new required field: values without it are reported, until a writer backfills it', async () => {
      const a = await open();
      await a.open('thing', { schema: v1, initial: { name: 'x' } });
      const b = await open();
      await assert.rejects(b.open('thing', { schema: v2Required }), { code: 'CORRUPT_REMOTE_VALUE' });
      const backfill = await b.open<{ name: string; color?: string }>('thing', { schema: v1 });
      await backfill.update((d) => void (d.color = 'blue'));
      const ok = await b.open<{ name: string; color: string }>('thing', { schema: v2Required });
      assert.equal(ok.read().color, 'blue');
    });
  });

  it('msgpack end to end, and a json reader of a msgpack struct reports the codec instead of garbage', async () => {
    const a = await open();
    const s = await a.open<{ n: number; tags: string[] }>('packed', { codec: msgpackCodec, initial: { n: 7, tags: ['x'] } });
    await s.update((d) => void d.tags.push('y'));
    const b = await open();
    const same = await b.open<{ n: number; tags: string[] }>('packed', { codec: msgpackCodec });
    assert.deepEqual(same.read(), { n: 7, tags: ['x', 'y'] });
    await assert.rejects(b.open('packed'), (err: SharedStructError) => {
      assert.equal(err.code, 'CORRUPT_REMOTE_VALUE');
      assert.match(err.message, /cannot be decoded|msgpack/);
      return true;
    });
  });
});
