/** The memory backend as a contract target: isolated `memory://NAME` stores and its test hooks. */
import { randomUUID } from 'node:crypto';
import { memoryStore, type MemoryBackend } from '../../adapters/memory/index.js';
import { backendOf } from '../../lib/client.js';
import { connect, type Client, type ConnectOptions } from '../../lib/index.js';
import type { ContractStore, ContractTarget } from '../contract/target.js';

/**
 * The backend of a memory client, for its test hooks. Checked by kind, not `instanceof`: `connect`
 * loads adapters with a dynamic import, which tsx instantiates apart from a static one.
 */
export function memoryBackendOf(client: Client): MemoryBackend {
  const b = backendOf(client);
  if (b.kind !== 'memory') throw new Error('not a memory client');
  return b as MemoryBackend;
}

export const memoryTarget: ContractTarget = {
  name: 'memory',
  setup: () => Promise.resolve(),
  teardown: () => Promise.resolve(),
  newStore(): Promise<ContractStore> {
    const url = `memory://ct-${randomUUID().slice(0, 8)}`;
    const clients: Client[] = [];
    const partitioned = new Set<Client>();
    return Promise.resolve({
      async connect(options: Partial<ConnectOptions> = {}) {
        const c = await connect(url, { requestTimeoutMs: 2000, ...options });
        clients.push(c);
        return c;
      },
      expireSession(client: Client) {
        const backend = memoryBackendOf(client);
        // A cut-off client learns of the expiry when the partition heals; a connected one at
        // once, as a real client's next keepalive would tell it (ending the session in the store
        // alone, it would never learn).
        if (partitioned.has(client)) backend.store.endSession(backend.session.id);
        else backend.expireSession();
        return Promise.resolve();
      },
      partition(client: Client) {
        const heal = memoryBackendOf(client).partition();
        partitioned.add(client);
        return Promise.resolve(() => {
          partitioned.delete(client);
          heal();
          return Promise.resolve();
        });
      },
      slowLink(client: Client, ms: number) {
        const backend = memoryBackendOf(client);
        backend.delayDelivery(ms);
        return Promise.resolve(() => {
          backend.delayDelivery(0);
          return Promise.resolve();
        });
      },
      rawPut(key: string, bytes: Uint8Array) {
        const store = memoryStore(url.slice('memory://'.length));
        const op = store.get(key)
          ? { op: 'put' as const, key, value: bytes }
          : { op: 'create' as const, key, value: bytes };
        if (!store.commit([], [op], '')) throw new Error(`raw write of ${key} failed`);
        return Promise.resolve();
      },
      rawGet(key: string) {
        return Promise.resolve(memoryStore(url.slice('memory://'.length)).get(key)?.value);
      },
      rawDelete(key: string) {
        const store = memoryStore(url.slice('memory://'.length));
        if (store.get(key)) store.commit([], [{ op: 'delete', key }], '');
        return Promise.resolve();
      },
      async close() {
        await Promise.allSettled(clients.splice(0).map((c) => c.close()));
      },
    });
  },
};
