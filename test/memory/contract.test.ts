import { fieldsContract } from '../contract/fields.suite.js';
import { modelContract } from '../contract/model.suite.js';
import { regressionsContract } from '../contract/regressions.suite.js';
import { structContract } from '../contract/struct.suite.js';
import { memoryTarget } from './target.js';

structContract(memoryTarget);
structContract(memoryTarget, 'fields');
fieldsContract(memoryTarget);
modelContract(memoryTarget);
modelContract(memoryTarget, 'fields');
regressionsContract(memoryTarget);
