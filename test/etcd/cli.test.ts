/** The CLI against a real etcd. */
import { cliContract } from '../contract/cli.suite.js';
import { sharedEtcd } from '../support/etcd.js';

cliContract({
  name: 'etcd',
  port: async () => Number((await sharedEtcd()).endpoints[0]!.split(':')[1]),
  url: (port) => `etcd://127.0.0.1:${port}`,
  history: true,
});
