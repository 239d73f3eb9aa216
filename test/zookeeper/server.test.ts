import { serverContract } from '../contract/server.suite.js';
import { zookeeperTarget as target } from './target.js';

serverContract(target);
