/**
 * `npm run test:containers`, ZooKeeper: the struct and coordination contracts on a 3-server
 * ensemble in containers (`sharedstruct/testing`, runtime 'container', host networking), and the
 * harness suite there too.
 */
import { startZooKeeper } from '../../testing/index.js';
import { coordinationContract } from '../contract/coordination.suite.js';
import { harnessSuite } from '../contract/harness.suite.js';
import { structContract } from '../contract/struct.suite.js';
import { zkRawOps } from '../zookeeper/target.js';
import { clusterTarget } from './target.js';

const target = clusterTarget('zookeeper', () => startZooKeeper({ nodes: 3, runtime: 'container' }), (cluster) => zkRawOps(cluster.connectString));
structContract(target);
coordinationContract(target);
harnessSuite({ name: 'zookeeper', runtime: 'container', start: (nodes) => startZooKeeper({ nodes, runtime: 'container' }) });
