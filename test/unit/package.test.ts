/**
 * The package as users get it: `import 'sharedstruct'` through the `exports` map resolves the
 * built `dist/` (npm test builds first), its types exist, and named schemas load from dist.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import type * as Api from '../../lib/index.js';

describe('package', () => {
  it('resolves through the exports map to the built ESM with types', async () => {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
      exports: { '.': { types: string; import: string } };
      type: string;
      sideEffects: boolean;
    };
    assert.equal(pkg.type, 'module');
    assert.equal(pkg.sideEffects, false);
    for (const file of [pkg.exports['.'].types, pkg.exports['.'].import]) {
      assert.ok(existsSync(new URL(`../../${file}`, import.meta.url)), `${file} exists (run npm run build)`);
    }
    // A variable specifier: typecheck runs before the build, when dist/ does not exist yet.
    const specifier = 'sharedstruct';
    const mod = (await import(specifier)) as typeof Api;
    assert.equal(typeof mod.connect, 'function');
    assert.ok(mod.ErrorCodes.includes('STALE_READ'));
    await using client = await mod.connect('memory://package-test');
    const flags = await client.open('flags', { schema: 'flags', initial: { beta: true, rollout: 5, regions: [] } });
    assert.equal(flags.read().rollout, 5);
  });
});
