/**
 * Process plumbing of the real-server harnesses: it lives in `testing/` (the package's
 * `sharedstruct/testing`); the suites keep importing it from here.
 */
export { freePort, freeze, removeDir, scratchDir, sleep, startProcess, waitUntil, which, type ServerProcess } from '../../testing/process.js';

