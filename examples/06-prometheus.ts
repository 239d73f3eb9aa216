/**
 * Metrics for Prometheus: the application installs the OpenTelemetry SDK with the Prometheus
 * exporter (sharedstruct itself depends on `@opentelemetry/api` only), then connects. A few
 * updates, a lock and a subscriber later, it scrapes its own `/metrics` endpoint as Prometheus
 * would and prints the `sharedstruct_*` series:
 *
 *   npx tsx examples/06-prometheus.ts                        # memory://
 *   npx tsx examples/06-prometheus.ts etcd://127.0.0.1:2379   # a real etcd (or zk://...)
 *
 * The app needs `@opentelemetry/sdk-metrics` and `@opentelemetry/exporter-prometheus` (versions
 * that share one `@opentelemetry/api`; this repo pins 2.12.0 and 0.223.0). Exit status 0 on
 * success; otherwise 1 and one line: `example 06: CODE: message`.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { metrics } from '@opentelemetry/api';
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { connect, isSharedStructError } from '../lib/index.js';

const url = process.argv[2] ?? 'memory://';
const namespace = `/sharedstruct-example05-${process.pid}`;

async function main(): Promise<void> {
  // 1. The SDK first: a client takes its instruments when it is made. The exporter's handler is
  //    served on a port of our choosing (0: any free one), on loopback.
  const exporter = new PrometheusExporter({ preventServerStart: true });
  metrics.setGlobalMeterProvider(new MeterProvider({ readers: [exporter] }));
  const server = createServer((req, res) => exporter.getMetricsRequestHandler(req, res));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  console.log(`store: ${url}  namespace: ${namespace}  metrics: http://127.0.0.1:${port}/metrics`);

  // 2. Ordinary use of the library.
  await using client = await connect(url, { namespace });
  const config = await client.open<{ replicas: number }>('config', { initial: { replicas: 1 } });
  const seen = config.changes()[Symbol.asyncIterator]();
  for (let i = 0; i < 5; i += 1) await config.update((d) => void (d.replicas += 1));
  await config.update(() => {}); // a no-op: counted, nothing sent
  for (let i = 0; i < 5; i += 1) await seen.next();
  await seen.return?.();
  const lock = await client.lock('deploy');
  await lock.release();

  // 3. What Prometheus would scrape.
  const res = await fetch(`http://127.0.0.1:${port}/metrics`);
  const text = await res.text();
  const series = text.split('\n').filter((l) => l.startsWith('sharedstruct_') && !l.includes('_bucket{'));
  for (const line of series) console.log(line);
  await config.delete();
  await exporter.shutdown();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  console.log(`scraped ${series.length} sharedstruct series`);
}

main().catch((err: unknown) => {
  const what = isSharedStructError(err) ? `${err.code}: ${err.message}` : String(err);
  console.error(`example 06: ${what}`);
  process.exitCode = 1;
});
