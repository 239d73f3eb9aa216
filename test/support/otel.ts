/**
 * The real OpenTelemetry SDK for tests: one global MeterProvider with a reader the test
 * collects on demand, and one global TracerProvider with an in-memory span exporter. Global
 * providers can be set once per process, so every suite shares them (installed on first use).
 */
import { metrics, trace } from '@opentelemetry/api';
import { DataPointType, MeterProvider, MetricReader, type DataPoint } from '@opentelemetry/sdk-metrics';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';

/** A reader collected by the test, not on a timer. */
class OnDemandReader extends MetricReader {
  protected onForceFlush(): Promise<void> {
    return Promise.resolve();
  }
  protected onShutdown(): Promise<void> {
    return Promise.resolve();
  }
}

interface Sdk {
  readonly reader: OnDemandReader;
  readonly spans: InMemorySpanExporter;
}
let sdk: Sdk | undefined;

/** Installs the SDK (once) and returns its reader and span exporter. */
export function installOtel(): Sdk {
  if (sdk) return sdk;
  const reader = new OnDemandReader();
  const spans = new InMemorySpanExporter();
  if (!metrics.setGlobalMeterProvider(new MeterProvider({ readers: [reader] }))) throw new Error('a global MeterProvider was already set');
  if (!trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] }))) throw new Error('a global TracerProvider was already set');
  sdk = { reader, spans };
  return sdk;
}

/** One collected data point, with its metric's name. */
export interface Point {
  readonly name: string;
  readonly attributes: Readonly<Record<string, unknown>>;
  /** The sum or gauge value; a histogram's count and sum. */
  readonly value: number;
  readonly count?: number;
}

/** Collects every metric now. */
export async function collect(): Promise<Point[]> {
  const { resourceMetrics, errors } = await installOtel().reader.collect();
  if (errors.length > 0) throw new Error(`metric collection failed: ${String(errors[0])}`);
  const points: Point[] = [];
  for (const scope of resourceMetrics.scopeMetrics) {
    for (const m of scope.metrics) {
      for (const dp of m.dataPoints as DataPoint<unknown>[]) {
        if (m.dataPointType === DataPointType.HISTOGRAM) {
          const h = dp.value as { count: number; sum?: number };
          points.push({ name: m.descriptor.name, attributes: dp.attributes, value: h.sum ?? 0, count: h.count });
        } else {
          points.push({ name: m.descriptor.name, attributes: dp.attributes, value: dp.value as number });
        }
      }
    }
  }
  return points;
}

/** The points of `name` whose attributes include `match`. */
export function pointsOf(points: readonly Point[], name: string, match: Readonly<Record<string, unknown>> = {}): Point[] {
  return points.filter((p) => p.name === name && Object.entries(match).every(([k, v]) => p.attributes[k] === v));
}

/** The finished spans named `name`, and clears none. */
export function spansNamed(name: string): ReadableSpan[] {
  return installOtel().spans.getFinishedSpans().filter((s) => s.name === name);
}
