/**
 * The README's code blocks marked runnable run as written and print what they promise. A block is
 * runnable when the line before its opening fence is `<!-- runnable -->`; it runs as a user's
 * script in a child process (test/support/script.ts; `from 'sharedstruct'` is the repository's
 * lib/), and its stdout must be, line for line, the `// prints: ...` comments of the block.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { runScript } from '../support/script.js';
import { ROOT } from './exec.js';

interface Block {
  /** 1-based line of the opening fence in README.md. */
  readonly line: number;
  readonly code: string;
  readonly prints: readonly string[];
  /** The `## ` heading the block is under. */
  readonly section: string;
}

/** The runnable blocks of a Markdown text. */
function runnableBlocks(markdown: string): Block[] {
  const lines = markdown.split('\n');
  const blocks: Block[] = [];
  let section = '';
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.startsWith('## ')) section = line.slice(3).trim();
    if (line.trim() !== '<!-- runnable -->') continue;
    const fence = lines[i + 1] ?? '';
    assert.match(fence, /^```ts$/, `README.md:${i + 2}: a runnable marker must be followed by a \`\`\`ts block`);
    const end = lines.findIndex((l, j) => j > i + 1 && l === '```');
    assert.ok(end > 0, `README.md:${i + 2}: the runnable block is not closed`);
    const code = lines.slice(i + 2, end).join('\n');
    const prints = [...code.matchAll(/\/\/ prints: (.*)$/gm)].map((m) => m[1]!.trimEnd());
    blocks.push({ line: i + 2, code, prints, section });
    i = end;
  }
  return blocks;
}

const blocks = runnableBlocks(readFileSync(join(ROOT, 'README.md'), 'utf8'));

describe('package: the README', function () {
  this.timeout(60_000);

  it('marks its Quick start runnable, and every runnable block promises its output (// prints: ...)', function () {
    assert.ok(blocks.some((b) => b.section === 'Quick start'), 'the Quick start has a block marked <!-- runnable -->');
    for (const b of blocks) assert.ok(b.prints.length > 0, `README.md:${b.line}: no "// prints:" comment`);
  });

  for (const block of blocks) {
    it(`the runnable block at README.md:${block.line} (${block.section}) runs on memory:// and prints what it says`, async function () {
      const r = await runScript(block.code, { timeoutMs: 30_000, env: { SHAREDSTRUCT_URL: 'memory://' } });
      const account = `exit ${r.code}${r.signal ? ` (${r.signal})` : ''}${r.timedOut ? ', timed out' : ''} after ${r.ms} ms\n--- stdout\n${r.stdout}--- stderr\n${r.stderr}`;
      assert.equal(r.timedOut, false, account);
      assert.equal(r.code, 0, account);
      assert.equal(r.stderr, '', account);
      assert.deepEqual(r.stdout.trimEnd().split('\n'), block.prints, account);
    });
  }
});
