/**
 * The durable-server contract (SPEC "Durable servers", issue 14), run unchanged on every backend:
 * order, exactly-once with competing consumers, batches, replies, effects after commit, poison
 * messages and dead letters, locked handling with a consumer that dies mid-effect, a consumer
 * cut off, bad messages, and an idle consumer's cost.
 */
import assert from 'node:assert/strict';
import { isSharedStructError, msgpackCodec, type Client, type DurableServer, type ServerOptions } from '../../lib/index.js';
import { backendOf } from '../../lib/client.js';
import { decodeFramed } from '../../lib/codec.js';
import { eventually } from './struct.suite.js';
import { storePerTest, type ContractTarget } from './target.js';
import { sleep } from '../support/process.js';

type Log = { applied: string[]; n: number; sent: number };
type Msg = { tag: string; by?: number; fail?: boolean; email?: boolean };

/** Registers the tests under `[name] durable server contract`. */
export function serverContract(target: ContractTarget): void {
  describe(`[${target.name}] durable server contract`, function () {
    this.timeout(90000);
    const ctx = storePerTest(target);
    let seq = 0;
    const name = (): string => `srv${Date.now().toString(36)}-${++seq}`;

    const logServer = (
      client: Client,
      n: string,
      extra: Partial<ServerOptions<Log, Msg, number>> = {},
    ): Promise<DurableServer<Log, Msg, number>> =>
      client.server<Log, Msg, number>(n, {
        initial: { applied: [], n: 0, sent: 0 },
        handle(draft, msg, c) {
          if (msg.fail) throw new Error(`poison ${msg.tag}`);
          if (msg.email) c.lock();
          draft.applied.push(msg.tag);
          draft.n += msg.by ?? 1;
          c.reply(draft.n);
        },
        ...extra,
      });

    it('3 competing consumers apply every message exactly once, in each producer\'s order', async () => {
      const clients = await Promise.all([0, 1, 2, 3, 4].map(() => ctx.store.connect()));
      const n = name();
      const servers = await Promise.all(clients.map((c) => logServer(c, n)));
      const consumers = await Promise.all(servers.slice(0, 3).map((s) => s.serve({ batch: 4 })));
      const producers = servers.slice(3);
      const perProducer = 20;
      await Promise.all(
        producers.map(async (p, pi) => {
          for (let i = 0; i < perProducer; i++) await p.cast({ tag: `p${pi}-${i}` });
        }),
      );
      const total = producers.length * perProducer;
      await eventually('every message applied', async () => (await servers[0]!.state.readConsistent()).applied.length >= total, 60000);
      await sleep(200);
      const { applied } = await servers[0]!.state.readConsistent();
      assert.equal(applied.length, total, 'no message applied twice');
      assert.equal(new Set(applied).size, total, 'each message once');
      for (let pi = 0; pi < producers.length; pi++) {
        const mine = applied.filter((t) => t.startsWith(`p${pi}-`));
        assert.deepEqual(mine, Array.from({ length: perProducer }, (_, i) => `p${pi}-${i}`), `producer ${pi}'s order`);
      }
      assert.deepEqual(await servers[0]!.pending(), []);
      await Promise.all(consumers.map((c) => c.stop()));
    });

    it('a batch commits many messages in one transaction; effects run after the commit, once each', async () => {
      const client = await ctx.store.connect();
      const n = name();
      const ran: string[] = [];
      const server = await logServer(client, n, {
        handle(draft, msg, c) {
          draft.applied.push(msg.tag);
          draft.n += 1;
          c.after((state) => void ran.push(`${msg.tag}@${state.n}`));
        },
      });
      for (let i = 0; i < 20; i++) await server.cast({ tag: `m${i}` });
      const versions: number[] = [];
      server.state.on('change', (ev) => versions.push(ev.version));
      const before = backendOf(client).counters.snapshot().txn ?? 0;
      const consumer = await server.serve({ batch: 16 });
      await eventually('applied', () => server.state.readDirty().applied.length === 20);
      await eventually('effects ran', () => ran.length === 20);
      const txns = (backendOf(client).counters.snapshot().txn ?? 0) - before;
      assert.ok(txns <= 3, `20 messages in batches of 16 took ${txns} transactions`);
      assert.ok(versions.length <= 3, `state versions written: ${versions.length}`);
      // Each effect saw the state as its batch committed it.
      assert.deepEqual(ran.map((r) => r.split('@')[0]), Array.from({ length: 20 }, (_, i) => `m${i}`));
      assert.ok(ran.every((r) => Number(r.split('@')[1]) >= Number(r.split('@')[0]!.slice(1)) + 1));
      await consumer.stop();
    });

    it('call() gets its reply exactly once; TIMEOUT leaves the message queued and nothing of the caller behind', async () => {
      const consumerClient = await ctx.store.connect();
      const callerClient = await ctx.store.connect();
      const n = name();
      const server = await logServer(consumerClient, n);
      const caller = await logServer(callerClient, n);
      await assert.rejects(caller.call({ tag: 'early', by: 5 }, { timeoutMs: 300 }), (err: unknown) => isSharedStructError(err, 'TIMEOUT') && /stays queued/.test(err.message));
      assert.deepEqual((await caller.pending()).map((m) => m.msg.tag), ['early']);
      const replies = `${callerClient.namespace}/${n}/replies`;
      await eventually('the timed-out caller left no reply key', async () => (await backendOf(callerClient).list(replies)).length === 0);
      const consumer = await server.serve();
      assert.equal(await caller.call({ tag: 'second', by: 10 }, { timeoutMs: 10000 }), 15);
      assert.deepEqual(caller.state.readDirty().applied, ['early', 'second'], 'the caller reads its own call');
      for (let i = 0; i < 10; i++) {
        const n = await caller.call({ tag: `c${i}` }, { timeoutMs: 10000 });
        assert.equal(caller.state.readDirty().n, n, `call ${i}: the caller's state shows the commit that replied`);
      }
      await eventually('no reply key left', async () => (await backendOf(callerClient).list(replies)).length === 0);
      await consumer.stop();
    });

    it('a poison message goes to the dead letters after maxAttempts and the queue goes on; retry and drop', async () => {
      const client = await ctx.store.connect();
      const n = name();
      let fixed = false;
      const server = await logServer(client, n, {
        maxAttempts: 3,
        handle(draft, msg) {
          if (msg.fail && !fixed) throw new Error(`poison ${msg.tag}`);
          draft.applied.push(msg.tag);
        },
      });
      const errors: string[] = [];
      const dead: string[] = [];
      server.on('error', (e) => errors.push(e.code));
      server.on('dead', (d) => dead.push(d.id));
      await server.cast({ tag: 'a' });
      const poison = await server.cast({ tag: 'bad', fail: true });
      await server.cast({ tag: 'b' });
      const poison2 = await server.cast({ tag: 'bad2', fail: true });
      const consumer = await server.serve({ batch: 8 });
      await eventually('the queue went on', () => server.state.readDirty().applied.includes('b'), 20000);
      await eventually('both dead', async () => (await server.deadLetters()).length === 2, 20000);
      assert.deepEqual(server.state.readDirty().applied, ['a', 'b']);
      const letters = await server.deadLetters();
      assert.deepEqual(letters.map((l) => [l.id, l.msg.tag, l.attempts]), [[poison.id, 'bad', 3], [poison2.id, 'bad2', 3]]);
      assert.match(letters[0]!.error.message, /poison bad/);
      assert.deepEqual(dead, [poison.id, poison2.id]);
      assert.ok(errors.filter((c) => c === 'HANDLER_FAILED').length >= 6, `errors: ${errors.join(',')}`);
      fixed = true;
      await server.retry(poison.id);
      await server.drop(poison2.id);
      await eventually('retried message applied', () => server.state.readDirty().applied.includes('bad'));
      assert.deepEqual(await server.deadLetters(), []);
      await assert.rejects(server.drop(poison2.id), (e: unknown) => isSharedStructError(e, 'NOT_FOUND'));
      await consumer.stop();
    });

    it('handleLocked: the queue waits for it; a consumer that dies mid-effect hands it on; state changes once', async () => {
      const a = await ctx.store.connect({ sessionTtlMs: 2000 });
      const b = await ctx.store.connect();
      const n = name();
      let effects = 0;
      let firstStarted: () => void = () => {};
      const started = new Promise<void>((resolve) => (firstStarted = resolve));
      const locked: ServerOptions<Log, Msg, number>['handleLocked'] = async (state, _msg, c) => {
        effects += 1;
        assert.ok(BigInt(c.token) > 0n);
        if (effects === 1) {
          firstStarted();
          await new Promise((resolve) => c.signal.addEventListener('abort', resolve, { once: true })); // "dies" mid-effect
          return { ...state, sent: state.sent + 100 }; // must never commit: its claim is gone
        }
        return { applied: [...state.applied, 'email'], n: state.n, sent: state.sent + 1 };
      };
      const sa = await logServer(a, n, { handleLocked: locked });
      const sb = await logServer(b, n, { handleLocked: locked });
      sa.on('error', () => {});
      await sb.cast({ tag: 'email', email: true });
      await sb.cast({ tag: 'after-email' });
      const ca = await sa.serve();
      await started;
      await sleep(200);
      assert.deepEqual(sa.state.readDirty().applied, [], 'the queue does not move past a claimed message');
      assert.equal((await sb.pending())[0]!.claimed, true);
      const cb = await sb.serve();
      await ctx.store.expireSession(a); // the first consumer's session ends mid-effect
      await eventually('handed on and applied', () => sb.state.readDirty().applied.join(',') === 'email,after-email', 30000);
      const s = await sb.state.readConsistent();
      assert.equal(s.sent, 1, 'the state changed exactly once');
      assert.equal(effects, 2, 'the side effect ran again (at least once)');
      await Promise.all([ca.stop(), cb.stop()]);
    });

    it('a consumer cut off pauses and resumes; nothing is applied twice', async () => {
      const c = await ctx.store.connect({ sessionTtlMs: 6000, requestTimeoutMs: 1000 });
      const p = await ctx.store.connect();
      const n = name();
      const consumerSide = await logServer(c, n);
      consumerSide.on('error', () => {});
      consumerSide.state.on('error', () => {});
      const producer = await logServer(p, n);
      const consumer = await consumerSide.serve();
      await producer.cast({ tag: 'one' });
      await eventually('one applied', async () => (await producer.state.readConsistent()).applied.length === 1);
      const heal = await ctx.store.partition(c);
      await producer.cast({ tag: 'two' });
      await producer.cast({ tag: 'three' });
      await sleep(1000);
      assert.deepEqual((await producer.state.readConsistent()).applied, ['one'], 'nothing applied while cut off');
      await heal();
      await eventually('resumed', async () => (await producer.state.readConsistent()).applied.length === 3, 30000);
      assert.deepEqual((await producer.state.readConsistent()).applied, ['one', 'two', 'three']);
      await consumer.stop();
    });

    it('bad messages are refused before anything is sent; an idle consumer sends no request', async () => {
      const client = await ctx.store.connect();
      const n = name();
      const server = await logServer(client, n);
      await assert.rejects(server.cast({ tag: 'x', when: new Date() } as unknown as Msg), (e: unknown) => isSharedStructError(e, 'INVALID_VALUE'));
      await assert.rejects(server.cast({ tag: 'x'.repeat(backendOf(client).limits.maxValueBytes + 10) }), (e: unknown) => isSharedStructError(e, 'VALUE_TOO_LARGE'));
      assert.deepEqual(await server.pending(), []);
      await assert.rejects((await client.server(name(), { initial: {} })).serve(), (e: unknown) => isSharedStructError(e, 'INVALID_ARGUMENT'));
      const consumer = await server.serve();
      await sleep(300);
      const counts = (): number => {
        const s = backendOf(client).counters.snapshot();
        // The state struct's own periodic version check (stat) is the struct's cost, not the consumer's.
        return Object.entries(s).reduce((sum, [op, v]) => (op === 'stat' ? sum : sum + v), 0);
      };
      const before = counts();
      await sleep(1500);
      assert.equal(counts() - before, 0, `an idle consumer sent ${counts() - before} requests`);
      await server.cast({ tag: 'wake' });
      await eventually('woken by its watch', () => server.state.readDirty().applied.includes('wake'));
      await consumer.stop();
    });

    it('codec: the state is stored with the server\'s codec (msgpack), which open() and other servers must name; messages stay JSON', async () => {
      const [a, b] = await Promise.all([ctx.store.connect(), ctx.store.connect()]);
      const n = name();
      const server = await logServer(a, n, { codec: msgpackCodec });
      const consumer = await server.serve({ batch: 2 });
      assert.equal(await server.call({ tag: 'one' }, { timeoutMs: 20000 }), 1);
      await server.cast({ tag: 'two', by: 2 });
      await eventually('both applied', () => server.state.readDirty().n === 3);
      const stored = await backendOf(a).get(`${a.namespace}/${n}/payload`, { consistent: true });
      assert.deepEqual(decodeFramed(msgpackCodec, stored!.value), { applied: ['one', 'two'], n: 3, sent: 0 });
      const state = await b.open<Log>(n, { codec: msgpackCodec });
      assert.deepEqual(state.read(), { applied: ['one', 'two'], n: 3, sent: 0 });
      await assert.rejects(b.open(n), (e: unknown) => isSharedStructError(e, 'CORRUPT_REMOTE_VALUE'));
      await assert.rejects(b.server(n, { codec: 'msgpack' as unknown as typeof msgpackCodec }), (e: unknown) => isSharedStructError(e, 'INVALID_ARGUMENT'));
      const other = await b.server<Log, Msg, number>(n, { codec: msgpackCodec });
      await other.cast({ tag: 'three' });
      await eventually('applied from the other producer', () => state.readDirty().applied.includes('three'));
      await consumer.stop();
    });

    it('a full queue refuses messages with QUEUE_FULL (nothing queued) until consumers catch up; counting is rare while it is short', async () => {
      const client = await ctx.store.connect();
      const n = name();
      const server = await logServer(client, n, { maxQueueLength: 3 });
      for (const tag of ['a', 'b', 'c']) await server.cast({ tag });
      await assert.rejects(server.cast({ tag: 'd' }), (e: unknown) => isSharedStructError(e, 'QUEUE_FULL') && e.retryable && /maxQueueLength 3/.test(e.message));
      await assert.rejects(server.call({ tag: 'e' }, { timeoutMs: 5000 }), (e: unknown) => isSharedStructError(e, 'QUEUE_FULL'));
      assert.deepEqual((await server.pending()).map((m) => m.msg.tag), ['a', 'b', 'c']);
      const consumer = await server.serve();
      await eventually('drained', async () => (await server.pending()).length === 0);
      await server.cast({ tag: 'f' });
      await eventually('applied after the refusal', () => server.state.readDirty().applied.join() === 'a,b,c,f');
      await consumer.stop();

      // A roomy bound: one count for the first message, the next after a tenth of the bound.
      const roomy = await logServer(client, name(), { maxQueueLength: 100 });
      const countsBefore = backendOf(client).counters.snapshot().count ?? 0;
      for (let i = 0; i < 10; i++) await roomy.cast({ tag: `r${i}` });
      assert.equal((backendOf(client).counters.snapshot().count ?? 0) - countsBefore, 1, '10 casts under a bound of 100 count the queue once');
      await roomy.cast({ tag: 'r10' });
      assert.equal((backendOf(client).counters.snapshot().count ?? 0) - countsBefore, 2);
      await assert.rejects(client.server(name(), { initial: {}, maxQueueLength: 0 }), (e: unknown) => isSharedStructError(e, 'INVALID_ARGUMENT') && /maxQueueLength/.test(e.message));
    });
  });
}
