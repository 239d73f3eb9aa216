/**
 * Example 05 (a user's node:test file with `sharedstruct/testing`) run as its header says; shared
 * by the package suite (binaries) and the container suite.
 */
import assert from 'node:assert/strict';
import { ROOT, describeResult, exec, type ExecResult } from './exec.js';

/** Runs example 05 (a user's node:test file) as its header says, on `runtime`. */
export function runTestExample(runtime: 'binary' | 'container'): Promise<ExecResult> {
  return exec(process.execPath, ['--import', 'tsx', '--test', '--test-reporter=tap', 'examples/05-failover.test.ts'], { cwd: ROOT, env: { SHAREDSTRUCT_RUNTIME: runtime }, timeoutMs: 120_000 });
}

/** Asserts that example 05 passed both of its tests. */
export function assertTestExamplePassed(r: ExecResult): void {
  assert.equal(r.code, 0, describeResult(r));
  assert.match(r.stdout, /^# tests 2$/m, describeResult(r));
  assert.match(r.stdout, /^# pass 2$/m, describeResult(r));
  assert.match(r.stdout, /^ {4}ok 1 - survives the death of etcd's leader$/m, describeResult(r));
}
