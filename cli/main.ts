#!/usr/bin/env node
/** The `sharedstruct` executable: runs the CLI on the process's arguments and streams. */
import { run } from './run.js';

const stop = new AbortController();
let signals = 0;
const onSignal = (signal: NodeJS.Signals): void => {
  // The first Ctrl-C ends a long-running command cleanly; a second one does not wait for that.
  signals += 1;
  if (signals > 1) process.exit(130);
  stop.abort(new Error(`interrupted (${signal})`));
};
process.on('SIGINT', onSignal);
process.on('SIGTERM', onSignal);

const code = await run(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin, env: process.env, signal: stop.signal });
process.exitCode = code;
process.off('SIGINT', onSignal);
process.off('SIGTERM', onSignal);
// A client library that keeps a handle open after close() must not keep the shell waiting.
setTimeout(() => process.exit(code), 2000).unref();
