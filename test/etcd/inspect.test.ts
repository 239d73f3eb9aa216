/** The inspection contract on etcd. */
import { inspectContract } from '../contract/inspect.suite.js';
import { etcdTarget } from './target.js';

inspectContract(etcdTarget, { history: true });
