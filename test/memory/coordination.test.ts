import { coordinationContract } from '../contract/coordination.suite.js';
import { memoryTarget } from './target.js';

coordinationContract(memoryTarget);
