import { serverContract } from '../contract/server.suite.js';
import { etcdTarget as target } from './target.js';

serverContract(target);
