/** The inspection contract on memory. */
import type { MemoryBackend } from '../../adapters/memory/index.js';
import { backendOf } from '../../lib/client.js';
import { inspectContract } from '../contract/inspect.suite.js';
import { memoryTarget } from './target.js';

inspectContract(memoryTarget, {
  history: true,
  compact: (client) => {
    (backendOf(client) as MemoryBackend).store.compact();
    return Promise.resolve();
  },
});
