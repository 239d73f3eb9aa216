import { telemetryContract } from '../contract/telemetry.suite.js';
import { memoryTarget } from './target.js';

telemetryContract(memoryTarget);
