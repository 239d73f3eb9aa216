import { randomUUID } from 'node:crypto';
import { createBackend } from '../../adapters/memory/index.js';
import { defaultConnectOptions } from '../../lib/options.js';
import { backendContract } from '../contract/backend.suite.js';

const storeName = `bc-${randomUUID().slice(0, 8)}`;
backendContract('memory', () => {
  const o = defaultConnectOptions();
  return createBackend({ scheme: 'memory', hosts: [storeName], path: '', params: {} }, { ...o, requestTimeoutMs: 2000, sessionTtlMs: 3000 });
});
