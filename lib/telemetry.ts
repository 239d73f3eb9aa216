/**
 * Metrics and spans through `@opentelemetry/api` only: every instrument is a no-op unless the
 * application registers an OpenTelemetry SDK, and the library ships no exporter. The metrics
 * API has no proxy provider, so a client takes its instruments (and its tracer) when it is made:
 * register the SDK before `connect()`. Names are under `sharedstruct.`; attributes carry the backend and, for
 * per-struct and per-lock figures, the name (bounded by what the application opens). Every
 * metric and what to alert on: docs/OPERATIONS.md "Telemetry".
 */
import {
  INVALID_SPAN_CONTEXT,
  ProxyTracerProvider,
  SpanStatusCode,
  createNoopMeter,
  isSpanContextValid,
  metrics,
  trace,
  type Attributes,
  type BatchObservableCallback,
  type Counter,
  type Histogram,
  type Meter,
  type ObservableCounter,
  type ObservableGauge,
  type Span,
  type Tracer,
} from '@opentelemetry/api';
import { isSharedStructError } from './errors.js';
import type { RequestFailures } from './backend.js';

/** The instrumentation scope's name. */
export const TELEMETRY_SCOPE = 'sharedstruct';

/** What a client tells its telemetry about, read when a metric reader collects. */
export interface TelemetrySources {
  /** Requests sent so far, by operation (the seam's counters). */
  requests(): Readonly<Record<string, number>>;
  /** Requests that failed so far, by operation and code (the seam's counters). */
  failures(): readonly RequestFailures[];
  /** Every open struct's name, staleness and its fullest subscriber's unread events. */
  structs(): Iterable<{ readonly name: string; readonly stalenessMs: number; readonly backlog: number }>;
}

/** The outcome attribute of a call: `ok`, or the error's code. */
function outcomeOf(err: unknown): string {
  return isSharedStructError(err) ? err.code : 'ERROR';
}

/** One client's instruments. @internal */
export class Telemetry {
  readonly #base: Attributes;
  readonly #tracer: Tracer;
  readonly #meter: Meter;
  readonly #updateDuration: Histogram;
  readonly #updateAttempts: Histogram;
  readonly #conflicts: Counter;
  readonly #noops: Counter;
  readonly #events: ObservableCounter;
  /**
   * Events delivered, counted here and observed at collection: every subscriber's every event
   * would otherwise cost a record in the SDK, which hashes the attribute set each time.
   */
  readonly #eventCounts = new Map<string, { readonly attrs: Attributes; n: number }>();
  readonly #overflows: Counter;
  readonly #sessionChanges: Counter;
  readonly #lockWait: Histogram;
  readonly #lockHold: Histogram;
  readonly #lockLosses: Counter;
  readonly #lockLossMargin: Histogram;
  readonly #electionChanges: Counter;
  readonly #applied: Counter;
  readonly #applyLatency: Histogram;
  readonly #requests: ObservableCounter;
  readonly #failures: ObservableCounter;
  readonly #staleness: ObservableGauge;
  readonly #backlog: ObservableGauge;
  readonly #observe: BatchObservableCallback;
  /** False when no SDK was registered: the hot paths then skip building attributes. */
  readonly #metering: boolean;
  readonly #tracing: boolean;
  /** Attribute sets of the hot paths, built once per key. */
  readonly #attrCache = new Map<string, Attributes>();

  /**
   * `client` tells this client's figures from other clients' in the same process (an
   * observation per attribute set: two clients' request counts would otherwise overwrite).
   */
  constructor(backend: string, client: string, sources: TelemetrySources) {
    this.#base = { 'sharedstruct.backend': backend, 'sharedstruct.client': client };
    // Taken now, like the meter: a client made before the SDK was registered records nothing,
    // spans included (the API's proxy tracer would otherwise start recording them later).
    const provider = trace.getTracerProvider();
    this.#tracer = (provider instanceof ProxyTracerProvider ? provider.getDelegate() : provider).getTracer(TELEMETRY_SCOPE);
    // A span the API's no-op tracer starts has an invalid context; an SDK's never (even when
    // sampled out). The probe is never ended, so no processor exports it.
    this.#tracing = isSpanContextValid(this.#tracer.startSpan('sharedstruct.probe').spanContext());
    const meter = metrics.getMeter(TELEMETRY_SCOPE);
    this.#meter = meter;
    this.#metering = meter !== createNoopMeter();
    const ms = { unit: 'ms' };
    this.#updateDuration = meter.createHistogram('sharedstruct.update.duration', { ...ms, description: 'update() / set() from call to commit (or failure), retries included' });
    this.#updateAttempts = meter.createHistogram('sharedstruct.update.attempts', { description: 'compare-and-swap attempts of one update() / set()' });
    this.#conflicts = meter.createCounter('sharedstruct.update.conflicts', { description: 'compare-and-swap attempts lost to another writer (each one retried or returned)' });
    this.#noops = meter.createCounter('sharedstruct.update.noops', { description: 'update() calls that changed nothing and sent no write' });
    this.#events = meter.createObservableCounter('sharedstruct.events', { description: 'change events delivered, by origin (local, remote, resync) and whether versions were coalesced' });
    this.#overflows = meter.createCounter('sharedstruct.subscriber.overflows', { description: 'subscribers that fell more than their buffer behind and had their backlog replaced by one resync event' });
    this.#sessionChanges = meter.createCounter('sharedstruct.session.changes', { description: 'session state changes, by new state (suspended, reconnected, lost, ...)' });
    this.#lockWait = meter.createHistogram('sharedstruct.lock.wait', { ...ms, description: 'lock() from call to acquisition (or failure)' });
    this.#lockHold = meter.createHistogram('sharedstruct.lock.hold', { ...ms, description: 'from acquisition to release or loss' });
    this.#lockLosses = meter.createCounter('sharedstruct.lock.losses', { description: 'locks lost before release (session lost or ending); late: true when no margin was left (the lock may have been gone before the holder knew)' });
    this.#lockLossMargin = meter.createHistogram('sharedstruct.lock.loss.margin', { ...ms, description: 'at each lock loss, the time left before the server could expire the session (by this client\'s clock); 0 when none was left (such a loss is counted late: the lock may have been gone before the holder knew)' });
    this.#electionChanges = meter.createCounter('sharedstruct.election.changes', { description: 'leaderships won and lost by this client, by change (won, lost, resigned)' });
    this.#applied = meter.createCounter('sharedstruct.server.applied', { description: 'durable-server messages applied (committed) by this client' });
    this.#applyLatency = meter.createHistogram('sharedstruct.server.apply.latency', { ...ms, description: 'from cast (enqueue) to the commit that applied the message' });
    this.#requests = meter.createObservableCounter('sharedstruct.requests', { description: 'requests sent to the store, by operation' });
    this.#failures = meter.createObservableCounter('sharedstruct.request.failures', { description: 'requests the store refused or did not answer in time, by operation and error code' });
    this.#staleness = meter.createObservableGauge('sharedstruct.staleness', { ...ms, description: 'age of each open struct\'s cache: time since it was last confirmed equal to the store' });
    this.#backlog = meter.createObservableGauge('sharedstruct.subscriber.backlog', { description: 'events buffered and not yet taken by the slowest subscriber of each open struct' });
    this.#observe = (result) => {
      for (const [op, n] of Object.entries(sources.requests())) result.observe(this.#requests, n, this.#attrs({ 'sharedstruct.operation': op }));
      for (const { attrs, n } of this.#eventCounts.values()) result.observe(this.#events, n, attrs);
      for (const f of sources.failures()) result.observe(this.#failures, f.count, this.#attrs({ 'sharedstruct.operation': f.operation, 'sharedstruct.code': f.code }));
      for (const s of sources.structs()) {
        const attrs = this.#attrs({ 'sharedstruct.struct': s.name });
        result.observe(this.#staleness, s.stalenessMs, attrs);
        result.observe(this.#backlog, s.backlog, attrs);
      }
    };
    meter.addBatchObservableCallback(this.#observe, this.#observables());
  }

  #observables(): [ObservableCounter, ObservableCounter, ObservableCounter, ObservableGauge, ObservableGauge] {
    return [this.#requests, this.#failures, this.#events, this.#staleness, this.#backlog];
  }

  #attrs(extra: Attributes): Attributes {
    return { ...this.#base, ...extra };
  }

  /**
   * Runs `fn` in a span `sharedstruct.<what>`; the span gets the outcome (`ok` or the error's
   * code) and whatever `fn` records on it.
   */
  async span<R>(what: string, attributes: Attributes, fn: (span: Span) => Promise<R>): Promise<R> {
    if (!this.#tracing) return fn(NO_SPAN);
    return this.#tracer.startActiveSpan(`sharedstruct.${what}`, { attributes: this.#attrs(attributes) }, async (span) => {
      try {
        const r = await fn(span);
        span.setAttribute('sharedstruct.outcome', 'ok');
        return r;
      } catch (err) {
        const outcome = outcomeOf(err);
        span.setAttribute('sharedstruct.outcome', outcome);
        span.setStatus({ code: SpanStatusCode.ERROR, message: outcome });
        if (err instanceof Error) span.recordException(err);
        throw err;
      } finally {
        span.end();
      }
    });
  }

  /**
   * An `update()`, `set()` or `modify()` (`operation`) ended after `attempts` attempts
   * (`conflicts` of them lost); `outcome` is `ok`, `noop` (nothing to write) or the error's code.
   */
  updated(struct: string, operation: string, ms: number, attempts: number, conflicts: number, outcome: string): void {
    if (!this.#metering) return;
    const attrs = this.#cached(`u\0${struct}\0${operation}\0${outcome}`, () => ({ 'sharedstruct.struct': struct, 'sharedstruct.operation': operation, 'sharedstruct.outcome': outcome }));
    this.#updateDuration.record(ms, attrs);
    this.#updateAttempts.record(attempts, attrs);
    if (conflicts > 0) this.#conflicts.add(conflicts, this.#cached(`s\0${struct}`, () => ({ 'sharedstruct.struct': struct })));
    if (outcome === 'noop') this.#noops.add(1, this.#cached(`s\0${struct}`, () => ({ 'sharedstruct.struct': struct })));
  }

  /** A change event was delivered to this instance's subscribers. */
  event(struct: string, origin: string, coalesced: boolean): void {
    if (!this.#metering) return;
    const key = `e\0${struct}\0${origin}\0${coalesced}`;
    const counted = this.#eventCounts.get(key);
    if (counted) counted.n += 1;
    else this.#eventCounts.set(key, { attrs: this.#cached(key, () => ({ 'sharedstruct.struct': struct, 'sharedstruct.origin': origin, 'sharedstruct.coalesced': coalesced })), n: 1 });
  }

  /** The attribute set under `key`, built by `make` the first time (bounded by what the app opens). */
  #cached(key: string, make: () => Attributes): Attributes {
    let attrs = this.#attrCache.get(key);
    if (!attrs) this.#attrCache.set(key, (attrs = this.#attrs(make())));
    return attrs;
  }

  /** A subscriber of `struct` overflowed its buffer (its backlog became one resync event). */
  overflowed(struct: string): void {
    this.#overflows.add(1, this.#attrs({ 'sharedstruct.struct': struct }));
  }

  /** The session changed state. */
  sessionChanged(state: string): void {
    this.#sessionChanges.add(1, this.#attrs({ 'sharedstruct.state': state }));
  }

  /** A lock wait ended (acquired, or failed with `outcome`). */
  lockWaited(lock: string, ms: number, outcome: string): void {
    this.#lockWait.record(ms, this.#attrs({ 'sharedstruct.lock': lock, 'sharedstruct.outcome': outcome }));
  }

  /**
   * A held lock ended: released, or lost with `marginMs` left before the server could expire the
   * session (the loss margin; not positive means the lock may have been gone before the loss).
   */
  lockEnded(lock: string, heldMs: number, marginMs?: number): void {
    const lost = marginMs !== undefined;
    this.#lockHold.record(heldMs, this.#attrs({ 'sharedstruct.lock': lock, 'sharedstruct.outcome': lost ? 'lost' : 'released' }));
    if (!lost) return;
    // A histogram takes no negative values: a late loss is counted as such, its margin as 0.
    this.#lockLosses.add(1, this.#attrs({ 'sharedstruct.lock': lock, 'sharedstruct.late': marginMs <= 0 }));
    this.#lockLossMargin.record(Math.max(0, marginMs), this.#attrs({ 'sharedstruct.lock': lock }));
  }

  /** This client won or lost a leadership. */
  electionChanged(election: string, change: 'won' | 'lost' | 'resigned'): void {
    this.#electionChanges.add(1, this.#attrs({ 'sharedstruct.election': election, 'sharedstruct.change': change }));
  }

  /** A durable server's messages were applied by this client's consumer. */
  applied(server: string, latenciesMs: readonly number[]): void {
    const attrs = this.#attrs({ 'sharedstruct.server': server });
    this.#applied.add(latenciesMs.length, attrs);
    for (const ms of latenciesMs) this.#applyLatency.record(ms, attrs);
  }

  /** The client closed: its observable figures are no longer reported. */
  close(): void {
    this.#meter.removeBatchObservableCallback(this.#observe, this.#observables());
  }
}

/** What `span()` hands `fn` when nothing traces: records nothing. */
const NO_SPAN: Span = trace.wrapSpanContext(INVALID_SPAN_CONTEXT);

/** The outcome attribute of a failed call. @internal */
export { outcomeOf };
