/** The session-state machine every adapter drives, so the transitions mean the same everywhere. */
import type { Session, SessionState, SessionStateChange } from '../backend.js';
import type { SharedStructError } from '../errors.js';

/**
 * Holds a backend's {@link Session} state. Adapters call `transition`; listeners see each real
 * change once. Allowed moves: connected → suspended → (reconnected | lost); lost → reconnected
 * with a new epoch; any → closed (final).
 */
export class SessionTracker implements Session {
  #state: SessionState = 'connected';
  #epoch = 1;
  #since = Date.now();
  #lastContactAt = Date.now();
  #id: string;
  readonly ttlMs: number;
  readonly #listeners = new Set<(change: SessionStateChange) => void>();

  constructor(id: string, ttlMs: number) {
    this.#id = id;
    this.ttlMs = ttlMs;
  }

  get state(): SessionState {
    return this.#state;
  }
  get epoch(): number {
    return this.#epoch;
  }
  get id(): string {
    return this.#id;
  }
  get since(): number {
    return this.#since;
  }
  get lastContactAt(): number {
    return this.#lastContactAt;
  }

  /**
   * Records that the server was heard from (adapters call it on every response and keepalive).
   * `at` may be when the answered request was sent, which is when the server renewed the session.
   */
  touch(at: number = Date.now()): void {
    if (at > this.#lastContactAt) this.#lastContactAt = at;
  }

  /** Moves to `state`. `newSessionId` starts a new epoch (only with `reconnected`). */
  transition(state: SessionState, options: { newSessionId?: string; cause?: SharedStructError } = {}): void {
    if (this.#state === 'closed') return;
    if (state === this.#state && options.newSessionId === undefined) return;
    if (options.newSessionId !== undefined) {
      this.#id = options.newSessionId;
      this.#epoch += 1;
    }
    this.#state = state;
    this.#since = Date.now();
    if (state === 'connected' || state === 'reconnected') this.#lastContactAt = this.#since;
    const change: SessionStateChange = Object.freeze({ state, epoch: this.#epoch, at: this.#since, cause: options.cause });
    for (const listener of [...this.#listeners]) {
      try {
        listener(change);
      } catch {
        // A listener's bug must not stop the others from learning the state.
      }
    }
  }

  onStateChange(listener: (change: SessionStateChange) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
}
