import { telemetryContract } from '../contract/telemetry.suite.js';
import { zookeeperTarget } from './target.js';

telemetryContract(zookeeperTarget);
