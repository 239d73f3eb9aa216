import { processContract } from '../contract/processes.suite.js';
import { sharedZooKeeper } from '../support/zookeeper.js';

processContract({ name: 'zookeeper', url: async () => `zk://${(await sharedZooKeeper()).connectString}` });
