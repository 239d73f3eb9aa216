/** The shared contract suites against a real ZooKeeper. */
import { createBackend } from '../../adapters/zookeeper/index.js';
import { backendContract } from '../contract/backend.suite.js';
import { coordinationContract } from '../contract/coordination.suite.js';
import { fieldsContract } from '../contract/fields.suite.js';
import { modelContract } from '../contract/model.suite.js';
import { regressionsContract } from '../contract/regressions.suite.js';
import { structContract } from '../contract/struct.suite.js';
import { sharedZooKeeper } from '../support/zookeeper.js';
import { testOptions } from './helpers.js';
import { zookeeperTarget } from './target.js';

backendContract('zookeeper', async () =>
  createBackend({ scheme: 'zk', hosts: (await sharedZooKeeper()).hosts, path: '', params: {} }, testOptions()),
);
structContract(zookeeperTarget);
structContract(zookeeperTarget, 'fields');
fieldsContract(zookeeperTarget);
coordinationContract(zookeeperTarget);
modelContract(zookeeperTarget);
modelContract(zookeeperTarget, 'fields');
regressionsContract(zookeeperTarget);
