import { linearizabilityContract } from '../contract/linearizability.suite.js';
import { etcdTarget } from './target.js';

linearizabilityContract(etcdTarget);
