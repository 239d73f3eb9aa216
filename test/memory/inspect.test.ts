/** The inspection contract on memory. */
import { inspectContract } from '../contract/inspect.suite.js';
import { memoryTarget } from './target.js';

inspectContract(memoryTarget, { history: true });
