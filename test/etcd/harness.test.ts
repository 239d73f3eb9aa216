/** `sharedstruct/testing`'s startEtcd on installed binaries (test/contract/harness.suite.ts). */
import { startEtcd } from '../../testing/index.js';
import { harnessSuite } from '../contract/harness.suite.js';

harnessSuite({ name: 'etcd', runtime: 'binary', start: (members) => startEtcd({ members, runtime: 'binary' }) });
