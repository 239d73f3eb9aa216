/**
 * The cost contract checked twice: at the adapter's seam (its counters) and on the server
 * (etcd's own Prometheus counters), on a private etcd so no other client moves them.
 */
import assert from 'node:assert/strict';
import type { EtcdBackend } from '../../adapters/etcd/index.js';
import { countsSince } from '../../lib/util/counters.js';
import { etcdBackend, metricValue, privateEtcd, type EtcdCluster } from '../support/etcd.js';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

/** The server counters this test reads. */
interface ServerCounts {
  readonly grpcTxn: number;
  readonly grpcRange: number;
  readonly mvccTxn: number;
  readonly mvccRange: number;
  readonly mvccPut: number;
}

async function serverCounts(etcd: EtcdCluster): Promise<ServerCounts> {
  const text = await etcd.metrics();
  const grpc = (method: string): number =>
    metricValue(text, 'grpc_server_started_total', { grpc_method: method, grpc_service: 'etcdserverpb.KV' });
  return {
    grpcTxn: grpc('Txn'),
    grpcRange: grpc('Range'),
    mvccTxn: metricValue(text, 'etcd_mvcc_txn_total'),
    mvccRange: metricValue(text, 'etcd_mvcc_range_total'),
    mvccPut: metricValue(text, 'etcd_mvcc_put_total'),
  };
}

function diff(a: ServerCounts, b: ServerCounts): ServerCounts {
  return {
    grpcTxn: b.grpcTxn - a.grpcTxn,
    grpcRange: b.grpcRange - a.grpcRange,
    mvccTxn: b.mvccTxn - a.mvccTxn,
    mvccRange: b.mvccRange - a.mvccRange,
    mvccPut: b.mvccPut - a.mvccPut,
  };
}

describe('etcd adapter: cost on the wire and on the server', function () {
  this.timeout(30000);
  let etcd: EtcdCluster;
  let backend: EtcdBackend;

  before(async () => {
    etcd = await privateEtcd();
    // A long TTL: no keepalive lands inside a measured window (keepalives are not KV calls
    // anyway, but the fewer moving parts the clearer the numbers).
    backend = await etcdBackend(etcd.endpoints, { sessionTtlMs: 30000 });
  });
  after(async () => {
    await backend?.close();
    await etcd?.stop();
  });

  it('an uncontended CAS put is one Txn RPC and no Range RPC, on both sides', async () => {
    const key = '/cost/s/payload';
    await backend.create(key, enc('v1'));
    const client0 = backend.counters.snapshot();
    const server0 = await serverCounts(etcd);
    const res = await backend.put(key, enc('v2'), { expectedVersion: 1 });
    assert.equal(res.ok, true);
    const server1 = await serverCounts(etcd);
    assert.deepEqual(countsSince(client0, backend.counters.snapshot()), { txn: 1 });
    const d = diff(server0, server1);
    // On the wire: one Txn RPC, no Range RPC. Inside, etcd 3.4's mvcc counters (measured, and
    // explained by its apply path) see more, all within that one request: the compares and the
    // put's `ignore_lease` check run in a read txn (2 ranges: a multi-op txn, counted once), then
    // the write txn reads the previous lease, puts and reads back keys-only (2 ranges + 1 put,
    // counted once). So etcd_mvcc_txn_total moves by 2 and etcd_mvcc_range_total by 4 for one
    // request: those counters measure storage work, not requests.
    assert.equal(d.grpcTxn, 1, JSON.stringify(d));
    assert.equal(d.grpcRange, 0, JSON.stringify(d));
    assert.equal(d.mvccPut, 1, JSON.stringify(d));
    assert.equal(d.mvccRange, 4, JSON.stringify(d));
    assert.equal(d.mvccTxn, 2, JSON.stringify(d));
  });

  it('a conflicting CAS and a conflicting create each cost one Txn and no Range RPC', async () => {
    const key = '/cost/c/payload';
    await backend.create(key, enc('v1'));
    await backend.put(key, enc('v2'), { expectedVersion: 1 });
    const client0 = backend.counters.snapshot();
    const server0 = await serverCounts(etcd);
    const lost = await backend.put(key, enc('stale'), { expectedVersion: 1 });
    assert.equal(lost.ok, false);
    const exists = await backend.create(key, enc('again'));
    assert.equal(exists.created, false);
    const server1 = await serverCounts(etcd);
    assert.deepEqual(countsSince(client0, backend.counters.snapshot()), { txn: 2 });
    const d = diff(server0, server1);
    assert.equal(d.grpcTxn, 2, JSON.stringify(d));
    assert.equal(d.grpcRange, 0, JSON.stringify(d));
    assert.equal(d.mvccPut, 0, JSON.stringify(d));
    // Each lost compare: one range for the compare (read txn) and one for the else-branch read
    // (write txn); single-op txns do not move etcd_mvcc_txn_total.
    assert.equal(d.mvccRange, 4, JSON.stringify(d));
    assert.equal(d.mvccTxn, 0, JSON.stringify(d));
  });
});
