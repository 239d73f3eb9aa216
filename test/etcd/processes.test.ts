import { processContract } from '../contract/processes.suite.js';
import { sharedEtcd } from '../support/etcd.js';

processContract({ name: 'etcd', url: async () => `etcd://${(await sharedEtcd()).endpoints.join(',')}` });
