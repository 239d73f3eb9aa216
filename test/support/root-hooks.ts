/** Mocha root hooks: stop every server the run started, by PID, when the run ends. */
import { runCleanups } from './cleanup.js';

export const mochaHooks = {
  async afterAll(): Promise<void> {
    await runCleanups();
  },
};

// A run that is interrupted still kills its servers.
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    void runCleanups().finally(() => process.exit(130));
  });
}
