import assert from 'node:assert/strict';
import { telemetryContract } from '../contract/telemetry.suite.js';
import { memoryTarget } from './target.js';
import { runScript } from '../support/script.js';

telemetryContract(memoryTarget);

describe('[memory] telemetry is taken when a client is made', function () {
  this.timeout(60000);

  it('a client made before the SDK was registered records neither metrics nor spans; one made after records both', async () => {
    // Its own process: the SDK's global providers can be registered once per process.
    const r = await runScript(`
      import { metrics, trace } from '@opentelemetry/api';
      import { MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics';
      import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
      import { connect } from 'sharedstruct';
      class Reader extends MetricReader { onForceFlush() { return Promise.resolve(); } onShutdown() { return Promise.resolve(); } }
      const before = await connect('memory://');
      const reader = new Reader();
      const spans = new InMemorySpanExporter();
      metrics.setGlobalMeterProvider(new MeterProvider({ readers: [reader] }));
      trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] }));
      const after = await connect('memory://');
      for (const c of [before, after]) {
        const s = await c.open('s', { initial: { n: 0 } });
        await s.update((d) => void (d.n += 1));
      }
      const { resourceMetrics } = await reader.collect();
      const clients = new Set();
      for (const sm of resourceMetrics.scopeMetrics) for (const m of sm.metrics) if (m.descriptor.name === 'sharedstruct.update.duration') for (const dp of m.dataPoints) clients.add(dp.attributes['sharedstruct.client']);
      const spanClients = new Set(spans.getFinishedSpans().filter((s) => s.name === 'sharedstruct.update').map((s) => s.attributes['sharedstruct.client']));
      console.log(JSON.stringify({ before: before.telemetryId, after: after.telemetryId, metrics: [...clients], spans: [...spanClients] }));
      await before.close();
      await after.close();
    `);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout.trim()) as { before: string; after: string; metrics: string[]; spans: string[] };
    assert.deepEqual(out.metrics, [out.after]);
    assert.deepEqual(out.spans, [out.after]);
  });
});
