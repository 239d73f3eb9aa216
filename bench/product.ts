/**
 * The library as users run it: the built package (`dist/`, what `npm pack` ships), not the
 * TypeScript sources. Under tsx the sources pay for esbuild's `keepNames` (a `defineProperty`
 * for every closure made), which cost ~20 % of a small update's CPU on ZooKeeper: a benchmark of
 * the sources would measure that, not the product. Types come from the sources (the same code);
 * `npm run bench` builds first.
 */
import { existsSync } from 'node:fs';
import type * as Library from '../lib/index.js';

const built = new URL('../dist/lib/index.js', import.meta.url);
if (!existsSync(built)) throw new Error(`bench: ${built.pathname} is missing; run 'npm run build' first (npm run bench does)`);

/** `connect` of the built package. */
export const { connect } = (await import(built.href)) as typeof Library;
