/** The CLI against a real ZooKeeper. */
import { cliContract } from '../contract/cli.suite.js';
import { sharedZooKeeper } from '../support/zookeeper.js';

cliContract({ name: 'zookeeper', url: async () => `zk://${(await sharedZooKeeper()).hosts.join(',')}` });
