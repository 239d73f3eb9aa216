import { telemetryContract } from '../contract/telemetry.suite.js';
import { etcdTarget } from './target.js';

telemetryContract(etcdTarget);
