/** The CLI against a real etcd. */
import { cliContract } from '../contract/cli.suite.js';
import { sharedEtcd } from '../support/etcd.js';

cliContract({ name: 'etcd', url: async () => `etcd://${(await sharedEtcd()).endpoints.join(',')}` });
