/**
 * A linearizability checker for histories of a versioned register with CAS — the model of one
 * struct: `read` (readConsistent), `update` (a read-modify-write whose linearization point is its
 * successful CAS) and `cas` (compareAndSet). Wing & Gong's search with memoization (as in Lowe's
 * and Porcupine's checkers): repeatedly linearize an operation that was called before every
 * remaining operation returned, applying it to the model; back off when the model disagrees; never
 * revisit a (set of linearized operations, model state) pair.
 *
 * An operation whose outcome is unknown (a timeout, a lost connection) has no return: it may take
 * effect at any point after its call, or never, and its output is not checked.
 */

/** The register's state: the struct's dense version and its value (JSON text, for equality). */
export interface RegisterState {
  readonly version: number;
  readonly value: string;
}

/** One operation of a history. Times come from one monotonic clock (e.g. performance.now()). */
export type Operation =
  | { readonly kind: 'read'; readonly client: number; readonly call: number; readonly ret?: number; readonly output?: RegisterState }
  /** `next(previous value)` is the value the update writes; `output` is the version and value it reported. */
  | {
      readonly kind: 'update';
      readonly client: number;
      readonly call: number;
      readonly ret?: number;
      readonly next: (previous: string) => string;
      readonly output?: RegisterState;
    }
  /** A single compare-and-set: `ok` whether it reported success. */
  | {
      readonly kind: 'cas';
      readonly client: number;
      readonly call: number;
      readonly ret?: number;
      readonly expectedVersion: number;
      readonly value: string;
      readonly output?: { readonly ok: boolean; readonly version?: number };
    };

/** The checker's verdict. */
export interface CheckResult {
  readonly linearizable: boolean;
  /** On success, the order of the operations that took effect (indices into the history). */
  readonly order?: readonly number[];
  /** Search states explored (for reports and for bounding). */
  readonly explored: number;
  /** True when the search hit `maxStates` before deciding; `linearizable` is then false. */
  readonly gaveUp: boolean;
}

/** Applies `op` to `state`; undefined when the model cannot produce the reported output. */
export function step(state: RegisterState, op: Operation): RegisterState | undefined {
  const known = op.ret !== undefined;
  switch (op.kind) {
    case 'read':
      if (!known || !op.output) return state; // an unanswered read changes nothing
      return op.output.version === state.version && op.output.value === state.value ? state : undefined;
    case 'update': {
      const next: RegisterState = { version: state.version + 1, value: op.next(state.value) };
      if (!known || !op.output) return next;
      return op.output.version === next.version && op.output.value === next.value ? next : undefined;
    }
    case 'cas': {
      const matches = state.version === op.expectedVersion;
      const next: RegisterState = matches ? { version: state.version + 1, value: op.value } : state;
      if (!known || !op.output) return next;
      if (op.output.ok !== matches) return undefined;
      if (matches && op.output.version !== undefined && op.output.version !== next.version) return undefined;
      return next;
    }
  }
}

/**
 * Checks `history` from `initial`. Completed operations must all be linearized; operations with
 * an unknown outcome may be linearized (after their call) or left out.
 */
export function checkLinearizable(
  initial: RegisterState,
  history: readonly Operation[],
  options: { maxStates?: number } = {},
): CheckResult {
  const maxStates = options.maxStates ?? 2_000_000;
  const n = history.length;
  const done = new Uint8Array(n);
  const ret = history.map((op) => op.ret ?? Number.POSITIVE_INFINITY);
  const completed = history.reduce((c, op) => c + (op.ret !== undefined ? 1 : 0), 0);
  const seen = new Set<string>();
  const order: number[] = [];
  let explored = 0;

  const key = (state: RegisterState): string => `${state.version}|${state.value}|${Array.from(done).join('')}`;

  // Candidates: not yet linearized, called before the earliest return among the remaining ones.
  const candidates = (): number[] => {
    let minRet = Number.POSITIVE_INFINITY;
    for (let i = 0; i < n; i++) if (!done[i] && ret[i]! < minRet) minRet = ret[i]!;
    const out: number[] = [];
    for (let i = 0; i < n; i++) if (!done[i] && history[i]!.call <= minRet) out.push(i);
    return out;
  };

  let completedLeft = completed;
  // Iterative depth-first search: each frame is a state and the candidates still to try.
  const stack: { state: RegisterState; options: number[]; chosen: number | undefined }[] = [
    { state: initial, options: candidates(), chosen: undefined },
  ];
  while (stack.length > 0) {
    if (completedLeft === 0) return { linearizable: true, order: [...order], explored, gaveUp: false };
    if (explored >= maxStates) return { linearizable: false, explored, gaveUp: true };
    const frame = stack[stack.length - 1]!;
    if (frame.chosen !== undefined) {
      // Coming back from a failed branch: undo the choice.
      done[frame.chosen] = 0;
      order.pop();
      if (history[frame.chosen]!.ret !== undefined) completedLeft += 1;
      frame.chosen = undefined;
    }
    const next = frame.options.shift();
    if (next === undefined) {
      stack.pop();
      continue;
    }
    explored += 1;
    const after = step(frame.state, history[next]!);
    if (!after) continue;
    done[next] = 1;
    const k = key(after);
    if (seen.has(k)) {
      done[next] = 0;
      continue;
    }
    seen.add(k);
    frame.chosen = next;
    order.push(next);
    if (history[next]!.ret !== undefined) completedLeft -= 1;
    stack.push({ state: after, options: candidates(), chosen: undefined });
  }
  return { linearizable: completedLeft === 0, ...(completedLeft === 0 && { order }), explored, gaveUp: false };
}
