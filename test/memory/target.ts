/**
 * The memory backend as a contract target: isolated `memory://NAME` stores and their fault hooks,
 * reached through `sharedstruct/testing`'s `memoryStore()` as a user's tests reach them.
 */
import { randomUUID } from 'node:crypto';
import { memoryStore, type MemoryBackend } from '../../adapters/memory/index.js';
import { backendOf } from '../../lib/client.js';
import { connect, type Client, type ConnectOptions } from '../../lib/index.js';
import { memoryStore as testStore } from '../../testing/index.js';
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
    const faults = testStore(`ct-${randomUUID().slice(0, 8)}`);
    const url = faults.url;
    const clients: Client[] = [];
    return Promise.resolve({
      async connect(options: Partial<ConnectOptions> = {}) {
        const c = await connect(url, { requestTimeoutMs: 2000, ...options });
        clients.push(c);
        return c;
      },
      expireSession: (client: Client) => faults.expireSession(client),
      partition(client: Client) {
        const heal = faults.partition(client);
        return Promise.resolve(() => {
          heal();
          return Promise.resolve();
        });
      },
      slowLink(client: Client, ms: number) {
        faults.delayDelivery(client, ms);
        return Promise.resolve(() => {
          faults.delayDelivery(client, 0);
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
