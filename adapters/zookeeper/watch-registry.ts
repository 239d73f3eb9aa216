/**
 * The server watches of one session, as this client keeps them: persistent watches (ZooKeeper
 * >= 3.6 `addWatch`, unknown to the library: added again after each reconnect, since the
 * library's SetWatches cannot carry them) and the library's one-shot watchers that our replies
 * leave (registered as its own calls would). The frame demultiplexer (demux.ts) hands it every
 * notification; the watches (watch.ts) reach it through their session (connection.ts).
 */
import { convertCode } from './errors.js';
import { addWatchRequest, removeWatchesRequest } from './wire.js';
import { OP, ZkCodes, type JuteRecord, type LibraryConnection, type ZkEvent } from './zk-client.js';

/**
 * Called for each notification of a persistent watch with the event type (1 created, 2 deleted,
 * 3 data changed, 4 children changed) and the node's path, or with 0 after a reconnect re-added
 * the watch: changes while it was gone were not notified, so the owner must read again.
 */
export type PersistentHandler = (type: number, path: string) => void;

/**
 * What a persistent watch covers: `node` (`AddWatchMode.PERSISTENT`: the node's data and
 * existence, and "children changed" without names) or `children` (`PERSISTENT_RECURSIVE`: the
 * node and its direct children, each change with the child's path, so a folder's joins and
 * leaves cost no read; deeper descendants notify the server's watch too and are ignored here).
 */
export type PersistentMode = 'node' | 'children';

/**
 * The watch a request leaves on the server (getData: data; exists: data, or existence when the
 * node is missing; getChildren: child), registered with the library when the reply arrives.
 */
export interface WatchRegistration {
  readonly kind: 'data' | 'exists' | 'child';
  readonly path: string;
  readonly watcher: (event: ZkEvent) => void;
}

/** The server's `AddWatchMode` of each mode, and the `WatcherType` that removes it. */
const ADD_WATCH_MODE: Record<PersistentMode, number> = { node: 0, children: 1 };
const WATCHER_TYPE: Record<PersistentMode, number> = { node: 4, children: 5 };

/** What the registry sends its requests on (the session, connection.ts). */
export interface WatchSender {
  /** True while connected to a server that answers. */
  readonly live: boolean;
  send(op: string, type: number, payload: JuteRecord | null, parse: undefined, options?: { readonly signal?: AbortSignal | undefined }): Promise<{ readonly err: number }>;
}

/** One session's persistent watches and its one-shot watcher registrations. */
export class WatchRegistry {
  readonly #lib: LibraryConnection;
  readonly #sender: WatchSender;
  /** Persistent watches on this session: path → mode and handlers (one server watch per path). */
  readonly #persistent = new Map<string, { readonly mode: PersistentMode; readonly handlers: Set<PersistentHandler> }>();

  constructor(lib: LibraryConnection, sender: WatchSender) {
    this.#lib = lib;
    this.#sender = sender;
  }

  /** See `ZkConnection.addPersistentWatch` (connection.ts). */
  async add(path: string, handler: PersistentHandler, signal: AbortSignal | undefined, mode: PersistentMode): Promise<boolean> {
    const existing = this.#persistent.get(path);
    if (existing && existing.handlers.size > 0) {
      if (existing.mode !== mode) return false;
      // The server watch is set, or its addWatch is queued ahead of anything sent from now on.
      existing.handlers.add(handler);
      return true;
    }
    const entry = { mode, handlers: new Set([handler]) };
    this.#persistent.set(path, entry);
    const reply = await this.#sender.send('addWatch', OP.addWatch, addWatchRequest(path, ADD_WATCH_MODE[mode]), undefined, { signal });
    if (reply.err === 0) return true;
    entry.handlers.delete(handler);
    if (entry.handlers.size === 0 && this.#persistent.get(path) === entry) this.#persistent.delete(path);
    if (reply.err === ZkCodes.UNIMPLEMENTED) return false;
    throw convertCode(reply.err, `addWatch ${path}`);
  }

  /** Removes `handler`; the last one of a path removes the server's watch (best effort). */
  remove(path: string, handler: PersistentHandler): void {
    const entry = this.#persistent.get(path);
    if (!entry?.handlers.delete(handler) || entry.handlers.size > 0) return;
    this.#persistent.delete(path);
    if (this.#sender.live) {
      this.#sender.send('removeWatches', OP.removeWatches, removeWatchesRequest(path, WATCHER_TYPE[entry.mode]), undefined).catch(() => undefined);
    }
  }

  /** After a reconnect on the same session: the server forgot the persistent watches; add them again. */
  rearm(): void {
    for (const [path, { mode, handlers }] of this.#persistent) {
      void this.#sender.send('addWatch', OP.addWatch, addWatchRequest(path, ADD_WATCH_MODE[mode]), undefined).then(
        (reply) => {
          // Ok: read again. Failed: the socket went again, and the next reconnect comes back here.
          if (reply.err === 0) for (const h of [...handlers]) h(0, path);
        },
        () => undefined,
      );
    }
  }

  /** Tells a notification of `path` to its persistent handlers: its own watch's, and its parent's `children` watch's. */
  dispatch(type: number, path: string): void {
    const own = this.#persistent.get(path);
    const cut = path.lastIndexOf('/');
    const parent = cut > 0 ? this.#persistent.get(path.slice(0, cut)) : cut === 0 && path.length > 1 ? this.#persistent.get('/') : undefined;
    const handlers = own ? [...own.handlers] : [];
    if (parent?.mode === 'children') handlers.push(...parent.handlers);
    for (const h of handlers) h(type, path);
  }

  /** Registers the watcher the server left for a reply (`err` its code), as the library's own calls would. */
  registerOneShot(watch: WatchRegistration, err: number): void {
    if (watch.kind === 'child') {
      if (err === 0) this.#lib.registerWatcher('child', watch.path, watch.watcher);
    } else if (err === 0) {
      this.#lib.registerWatcher('data', watch.path, watch.watcher);
    } else if (watch.kind === 'exists' && err === ZkCodes.NO_NODE) {
      this.#lib.registerWatcher('existence', watch.path, watch.watcher);
    }
  }

  /** See `ZkConnection.unregister` (connection.ts). */
  unregisterOneShot(path: string, watcher: (event: ZkEvent) => void): void {
    this.#lib.removeWatcher(path, watcher);
  }

  /** Whether the library holds a one-shot watcher of `path` (it must then see the notification). */
  holdsOneShot(path: string): boolean {
    return this.#lib.hasWatcher(path);
  }
}
