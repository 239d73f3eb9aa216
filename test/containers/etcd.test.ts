/**
 * `npm run test:containers`, etcd: the struct and coordination contracts on a 3-member cluster in
 * containers (`sharedstruct/testing`, runtime 'container', host networking), and the harness
 * suite there too.
 */
import type { Etcd3 } from 'etcd3';
import { startEtcd } from '../../testing/index.js';
import { coordinationContract } from '../contract/coordination.suite.js';
import { harnessSuite } from '../contract/harness.suite.js';
import { structContract } from '../contract/struct.suite.js';
import { etcdRawOps } from '../etcd/target.js';
import { rawEtcd } from '../support/etcd.js';
import { clusterTarget } from './target.js';

const target = clusterTarget(
  'etcd',
  () => startEtcd({ members: 3, runtime: 'container' }),
  (cluster) => {
    const raw: Etcd3 = rawEtcd(cluster.endpoints);
    return { ...etcdRawOps(() => raw), close: () => Promise.resolve(raw.close()) };
  },
);
structContract(target);
coordinationContract(target);
harnessSuite({ name: 'etcd', runtime: 'container', start: (members) => startEtcd({ members, runtime: 'container' }) });
