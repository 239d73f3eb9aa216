/** The shared contract suites against a real etcd. */
import { backendContract } from '../contract/backend.suite.js';
import { coordinationContract } from '../contract/coordination.suite.js';
import { fieldsContract } from '../contract/fields.suite.js';
import { modelContract } from '../contract/model.suite.js';
import { regressionsContract } from '../contract/regressions.suite.js';
import { structContract } from '../contract/struct.suite.js';
import { etcdBackend, sharedEtcd } from '../support/etcd.js';
import { etcdTarget } from './target.js';

backendContract('etcd', async () => etcdBackend((await sharedEtcd()).endpoints));
structContract(etcdTarget);
structContract(etcdTarget, 'fields');
fieldsContract(etcdTarget);
coordinationContract(etcdTarget);
modelContract(etcdTarget);
modelContract(etcdTarget, 'fields');
regressionsContract(etcdTarget);
