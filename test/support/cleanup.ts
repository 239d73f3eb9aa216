/**
 * One registry of things to stop when the mocha run ends (servers, proxies): harnesses start a
 * server once per run and register its kill here; the root hook in `root-hooks.ts` runs them.
 */
const cleanups: (() => Promise<void> | void)[] = [];

/** Registers `fn` to run once at the end of the test run (last registered runs first). */
export function onRunEnd(fn: () => Promise<void> | void): void {
  cleanups.push(fn);
}

/** Runs every registered cleanup; errors are reported, not thrown, so all of them run. */
export async function runCleanups(): Promise<void> {
  while (cleanups.length > 0) {
    const fn = cleanups.pop()!;
    try {
      await fn();
    } catch (err) {
      console.error('cleanup failed:', err);
    }
  }
}
