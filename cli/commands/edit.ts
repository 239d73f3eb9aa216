/** `edit NAME`: $VISUAL / $EDITOR on the value, the diff, one compare-and-set on the version opened. */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline/promises';
import { SharedStructError, applyChanges, diffValues, isSharedStructError } from '../../lib/index.js';
import type { Command, CommandContext } from '../command.js';
import { diffLines, toJson } from '../output.js';
import { CODEC_OPTION, openArgument, parseJson } from '../structs.js';

/** Runs the editor as git does: through the shell, so `EDITOR="code --wait"` works. */
async function runEditor(ctx: CommandContext, file: string): Promise<void> {
  const editor = ctx.env.VISUAL || ctx.env.EDITOR || 'vi';
  const child = spawn('/bin/sh', ['-c', `${editor} "$@"`, editor, file], { stdio: 'inherit', env: ctx.env });
  const [code, signal] = (await once(child, 'exit')) as [number | null, NodeJS.Signals | null];
  if (code !== 0) {
    throw new SharedStructError('ABORTED', `the editor (${editor}) exited with ${signal ?? `status ${String(code)}`}; nothing was written`);
  }
}

/** Asks a yes/no question on stderr (default yes). Only asked when a person is there. */
async function ask(ctx: CommandContext, question: string): Promise<boolean> {
  const rl = createInterface({ input: ctx.stdin, output: ctx.err.stream as NodeJS.WritableStream });
  try {
    const answer = await rl.question(`${question} [Y/n] `, { signal: ctx.signal });
    return !/^\s*n/i.test(answer);
  } finally {
    rl.close();
  }
}

export const edit: Command = {
  name: 'edit',
  args: 'NAME',
  summary: 'edit a struct in $VISUAL/$EDITOR: shows the diff, writes with CAS on the version opened',
  details:
    'Invalid JSON is never written: in a terminal the editor re-opens on your text, otherwise the command exits 1 (INVALID_VALUE).\n' +
    "If another writer changed the struct meanwhile (CONFLICT), their change is shown; in a terminal your edit is replayed\n" +
    'on top of theirs and the editor re-opens, otherwise the command exits 1. --json prints { name, version, previousVersion, changes }.',
  options: { codec: CODEC_OPTION },
  positionals: { required: ['NAME'] },
  async run(ctx) {
    const name = ctx.positionals[0]!;
    await using struct = await openArgument(ctx);
    const dir = await mkdtemp(join(tmpdir(), 'sharedstruct-edit-'));
    const file = join(dir, `${name.replaceAll('/', '_')}.json`);
    try {
      let base: unknown = await struct.readConsistent({ signal: ctx.signal });
      let version = struct.stat().version;
      let text = `${toJson(base, 2)}\n`;
      for (;;) {
        await writeFile(file, text);
        await runEditor(ctx, file);
        text = await readFile(file, 'utf8');
        let next: unknown;
        try {
          next = parseJson(text, 'the edited file');
        } catch (err) {
          if (!ctx.interactive) throw err;
          ctx.err.line(ctx.err.style('red', err instanceof Error ? err.message : String(err)));
          if (await ask(ctx, 're-open the editor?')) continue;
          throw err;
        }
        const changes = diffValues(base, next);
        if (changes.length === 0) {
          if (ctx.json) ctx.out.json({ name, version, previousVersion: version, changes });
          else ctx.err.line(`${name}: no changes; nothing written`);
          return;
        }
        for (const line of diffLines(ctx.err, changes)) ctx.err.line(line);
        try {
          const written = await struct.compareAndSet(version, next, { signal: ctx.signal });
          if (ctx.json) ctx.out.json({ name, version: written.version, previousVersion: version, changes });
          else ctx.err.line(`${name}: version ${version} → ${written.version}`);
          return;
        } catch (err) {
          if (!isSharedStructError(err, 'CONFLICT')) throw err;
          const current: unknown = await struct.readConsistent({ signal: ctx.signal });
          const now = struct.stat().version;
          ctx.err.line(ctx.err.style('yellow', `${name} was changed by another writer while you edited (version ${version} → ${now}); their change:`));
          for (const line of diffLines(ctx.err, diffValues(base, current))) ctx.err.line(`  ${line}`);
          if (!ctx.interactive || !(await ask(ctx, 're-edit with your change replayed on their version?'))) {
            throw new SharedStructError('CONFLICT', `struct '${name}' changed from version ${version} to ${now} while it was edited; nothing was written: run 'sharedstruct edit ${name}' again`, { cause: err });
          }
          // Your edit on top of theirs; where both changed the same place, yours is the one shown.
          let replayed: unknown;
          try {
            replayed = applyChanges<unknown>(current, changes);
          } catch {
            replayed = next;
          }
          base = current;
          version = now;
          text = `${toJson(replayed, 2)}\n`;
        }
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  },
};
