import { serverContract } from '../contract/server.suite.js';
import { memoryTarget as target } from './target.js';

serverContract(target);
