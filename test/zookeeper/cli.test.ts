/** The CLI against a real ZooKeeper. */
import { cliContract } from '../contract/cli.suite.js';
import { sharedZooKeeper } from '../support/zookeeper.js';

cliContract({
  name: 'zookeeper',
  port: async () => (await sharedZooKeeper()).nodes[0]!.port,
  url: (port) => `zk://127.0.0.1:${port}`,
  history: false,
});
