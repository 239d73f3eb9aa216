/**
 * The package's metadata, read from the repository: publishable (not private, a license file
 * that is the declared license, a changelog entry for the version), an `exports` map that serves
 * `import` and `require` alike, and an install-script policy that covers every dependency with
 * an install script. What the packed tarball does when installed is test/package/tarball.test.ts.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

const read = (path: string): string => readFileSync(new URL(`../../${path}`, import.meta.url), 'utf8');

interface PackageJson {
  name: string;
  version: string;
  private?: boolean;
  license: string;
  type: string;
  sideEffects: boolean;
  engines: { node: string };
  exports: Record<string, unknown>;
  scripts: Record<string, string>;
  allowScripts?: Record<string, boolean>;
  dependencies: Record<string, string>;
  peerDependencies?: Record<string, string>;
  peerDependenciesMeta?: Record<string, { optional?: boolean }>;
}

const pkg = JSON.parse(read('package.json')) as PackageJson;

describe('package metadata', () => {
  it('is publishable: not private, an ESM package without side effects, for Node >= 20.19', () => {
    assert.equal(pkg.private, undefined);
    assert.equal(pkg.type, 'module');
    assert.equal(pkg.sideEffects, false);
    assert.equal(pkg.engines.node, '>=20.19');
  });

  it('LICENSE is the full text of the declared license (Apache-2.0)', () => {
    assert.equal(pkg.license, 'Apache-2.0');
    const text = read('LICENSE');
    assert.match(text, /^\s+Apache License\n\s+Version 2\.0, January 2004\n/);
    for (const heading of ['TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION', '9. Accepting Warranty or Additional Liability.', 'END OF TERMS AND CONDITIONS']) {
      assert.ok(text.includes(heading), `LICENSE has "${heading}"`);
    }
  });

  it('CHANGELOG.md has an Unreleased section and one for the version in package.json', () => {
    const changelog = read('CHANGELOG.md');
    assert.match(changelog, /^## \[Unreleased\]$/m);
    assert.match(changelog, new RegExp(`^## \\[${pkg.version.replaceAll('.', '\\.')}\\] - \\d{4}-\\d{2}-\\d{2}$`, 'm'));
  });

  it("exports the library and sharedstruct/testing, each one module to import and require alike: types first, then 'default' (no 'import'-only entry)", () => {
    assert.deepEqual(Object.keys(pkg.exports), ['.', './testing', './package.json']);
    assert.deepEqual(pkg.exports['.'], { types: './dist/lib/index.d.ts', default: './dist/lib/index.js' });
    assert.deepEqual(pkg.exports['./testing'], { types: './dist/testing/index.d.ts', default: './dist/testing/index.js' });
  });

  it('testcontainers is an optional peer dependency (loaded by sharedstruct/testing only for runtime container), never a dependency', () => {
    assert.equal(pkg.dependencies.testcontainers, undefined);
    assert.equal(pkg.peerDependencies?.testcontainers, '^12.0.1');
    assert.deepEqual(pkg.peerDependenciesMeta?.testcontainers, { optional: true });
  });

  it('the install-script policy (allowScripts) decides every dependency that has an install script, and nothing else', () => {
    const lock = JSON.parse(read('package-lock.json')) as { packages: Record<string, { hasInstallScript?: boolean }> };
    const withScripts = new Set(
      Object.entries(lock.packages)
        .filter(([, entry]) => entry.hasInstallScript)
        .map(([path]) => path.slice(path.lastIndexOf('node_modules/') + 'node_modules/'.length)),
    );
    const decided = new Set(Object.keys(pkg.allowScripts ?? {}));
    assert.deepEqual([...withScripts].filter((name) => !decided.has(name)), [], 'npm would warn about these on every install: approve or deny them (npm install-scripts)');
    assert.deepEqual([...decided].filter((name) => !withScripts.has(name)), [], 'entries for packages without install scripts (npm install-scripts prune)');
  });
});
