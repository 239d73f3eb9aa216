import { linearizabilityContract } from '../contract/linearizability.suite.js';
import { zookeeperTarget } from './target.js';

linearizabilityContract(zookeeperTarget);
