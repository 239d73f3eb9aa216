import { structContract } from '../contract/struct.suite.js';
import { memoryTarget } from './target.js';

structContract(memoryTarget);
