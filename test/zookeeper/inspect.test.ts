/** The inspection contract on zookeeper. */
import { inspectContract } from '../contract/inspect.suite.js';
import { zookeeperTarget } from './target.js';

inspectContract(zookeeperTarget, { history: false });
