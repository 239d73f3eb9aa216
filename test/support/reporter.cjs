// The spec reporter plus one plain closing line ("mocha: N passed, N failed, N skipped") that
// CI reads, and a count per group so a run shows how many tests talked to real servers: the
// backend a suite's title names ("[memory] ...", "etcd adapter ..."), else the test file's folder
// under test/ ("unit", "package", ...).
'use strict';
const Mocha = require('mocha');
const { EVENT_RUN_END, EVENT_TEST_PASS, EVENT_TEST_FAIL, EVENT_TEST_PENDING } = Mocha.Runner.constants;

class SpecWithSummary extends Mocha.reporters.Spec {
  constructor(runner, options) {
    super(runner, options);
    const perBackend = new Map();
    const tally = (test, field) => {
      const root = test.titlePath()[0] ?? '';
      const m = /^\[?(memory|etcd|zookeeper)\b/i.exec(root);
      const folder = /(?:^|[\\/])test[\\/]([^\\/]+)[\\/][^\\/]+$/.exec(test.file ?? '');
      const key = m ? m[1].toLowerCase() : folder ? folder[1] : 'unit';
      const row = perBackend.get(key) ?? { passed: 0, failed: 0, skipped: 0 };
      row[field] += 1;
      perBackend.set(key, row);
    };
    runner.on(EVENT_TEST_PASS, (t) => tally(t, 'passed'));
    runner.on(EVENT_TEST_FAIL, (t) => tally(t, 'failed'));
    runner.on(EVENT_TEST_PENDING, (t) => tally(t, 'skipped'));
    runner.once(EVENT_RUN_END, () => {
      const s = runner.stats;
      for (const [k, r] of [...perBackend].sort()) {
        console.log(`  ${k}: ${r.passed} passed, ${r.failed} failed, ${r.skipped} skipped`);
      }
      console.log(`mocha: ${s.passes} passed, ${s.failures} failed, ${s.pending} skipped`);
    });
  }
}
module.exports = SpecWithSummary;
