/**
 * Compile-time tests of the public types, checked by `npm run typecheck` (never run). Each
 * `@ts-expect-error` must meet an error: if a type loosens, the line stops erroring and tsc fails.
 */
import { connect, type Flags, type SharedStruct, type ChangeEvent } from '../../lib/index.js';

export async function schemaTypedOpen(): Promise<void> {
  await using client = await connect('memory://');
  const flags = await client.open('flags', { schema: 'flags', initial: { beta: false, rollout: 0, regions: [] } });
  const typed: SharedStruct<Flags> = flags;
  const rollout: number = flags.read().rollout;

  // @ts-expect-error rollout is a number, not a string
  const wrong: string = flags.read().rollout;

  await flags.update((draft) => {
    // @ts-expect-error beta is a boolean
    draft.beta = 'yes';
  });

  // @ts-expect-error the initial value must match the schema's type
  await client.open('flags', { schema: 'flags', initial: { beta: 'no', rollout: 0, regions: [] } });

  // @ts-expect-error an unknown schema name is not a SchemaName, and no object either
  await client.open('flags', { schema: 42 });

  flags.on('change', (event: ChangeEvent<Flags>) => {
    const was: unknown = event.changes[0]?.kind === 'Modified' ? event.changes[0].oldValue : undefined;
    void was;
  });
  void typed;
  void rollout;
  void wrong;
}

export async function genericOpen(): Promise<void> {
  await using client = await connect('memory://');
  const counter = await client.open<{ n: number }>('counter', { initial: { n: 0 } });
  const n: number = counter.read().n;
  // @ts-expect-error the draft is typed by T
  await counter.update((d) => void (d.n = 'one'));
  // @ts-expect-error modify must return [result, next]
  await counter.modify((d) => d);
  const result: string = await counter.modify((d) => ['ok', { n: d.n + 1 }] as const);
  void n;
  void result;
}
