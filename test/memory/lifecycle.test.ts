/**
 * A user's script is a short process: while a call of ours is pending the process must stay
 * alive, and once nothing is pending an open client must not keep it alive. Only observable from
 * outside, so each case runs as a child process (test/support/script.ts) and its exit status
 * and output are checked. The same contract on real servers is in test/etcd and test/zookeeper.
 */
import assert from 'node:assert/strict';
import { runScript, type ScriptResult } from '../support/script.js';

const explain = (r: ScriptResult): string => `exit ${r.code ?? r.signal}${r.timedOut ? ' (timed out)' : ''} after ${r.ms} ms\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;

describe('[memory] process lifecycle', function () {
  this.timeout(60000);

  it('updates that conflict and back off keep the script alive until they settle', async () => {
    // Several clients update one struct at once: the losers back off on our (unref'd) timers,
    // with nothing else pending. Without a hold, Node ends the script with status 13.
    const r = await runScript(`
      import { connect } from 'sharedstruct';
      const clients = await Promise.all([1, 2, 3, 4].map(() => connect('memory://lifecycle')));
      const structs = await Promise.all(clients.map((c) => c.open('s', { initial: { n: 0 } })));
      console.log('before');
      await Promise.all(structs.map((s) => s.update(async (d) => { await Promise.resolve(); d.n += 1; })));
      console.log('after', structs[0].read().n);
    `);
    assert.equal(r.code, 0, explain(r));
    assert.match(r.stdout, /before\nafter 4\n/, explain(r));
  });

  it('an idle open client lets the script exit by itself', async () => {
    const r = await runScript(`
      import { connect } from 'sharedstruct';
      const client = await connect('memory://idle');
      const s = await client.open('s', { initial: { n: 1 } });
      s.on('change', () => {});
      console.log('done', s.read().n);
    `, { timeoutMs: 15000 });
    assert.equal(r.code, 0, explain(r));
    assert.equal(r.timedOut, false, explain(r));
    assert.equal(r.stdout, 'done 1\n');
  });

  it('a pending lock wait and a waiting changes() iterator keep it alive; closing lets it exit', async () => {
    const r = await runScript(`
      import { connect } from 'sharedstruct';
      const a = await connect('memory://waits');
      const b = await connect('memory://waits');
      const held = await a.lock('job');
      // Released by a timer of ours that does not hold the process: only b's wait holds it.
      const release = setTimeout(() => void held.release(), 300);
      release.unref();
      const lock = await b.lock('job', { waitMs: 10000 });
      console.log('got the lock after the holder released');
      await lock.release();
      const s = await a.open('s', { initial: { n: 0 } });
      const t = setTimeout(() => void s.update((d) => { d.n = 7; }), 300);
      t.unref();
      for await (const ev of s.changes()) {
        console.log('event', ev.version, ev.value.n);
        break;
      }
      await a.close();
      await b.close();
      console.log('closed');
    `);
    assert.equal(r.code, 0, explain(r));
    assert.equal(r.stdout, 'got the lock after the holder released\nevent 2 7\nclosed\n', explain(r));
  });
});
