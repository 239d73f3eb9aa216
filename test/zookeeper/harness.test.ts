/** `sharedstruct/testing`'s startZooKeeper on the installed Debian package (test/contract/harness.suite.ts). */
import { startZooKeeper } from '../../testing/index.js';
import { harnessSuite } from '../contract/harness.suite.js';

harnessSuite({ name: 'zookeeper', runtime: 'binary', start: (nodes) => startZooKeeper({ nodes, runtime: 'binary' }) });
