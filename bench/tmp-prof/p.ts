import { connect } from '../../lib/index.js';
const big: Record<string, { n: number; text: string }> = {};
for (let i = 0; i < 200; i++) big[`f${i}`] = { n: 0, text: String(i % 10).repeat(4980) };
const large = { n: 0, service: 'checkout', blob: Array.from({ length: 1400 }, (_, i) => ({ id: i, name: `item-${i}`, on: i % 3 === 0, w: i * 7 })) };
const c = await connect('memory://prof', {});
const sf = await c.open<typeof big>('big', { layout: 'fields', initial: big, refreshIntervalMs: 600000 });
const sv = await c.open<Record<string, unknown>>('large', { initial: large, refreshIntervalMs: 600000 });
for (const [name, op] of [...(process.env.ONLY === 'value' ? [] : [['fields 1MB', (i: number) => sf.update((d) => void (d[`f${i % 200}`]!.n = i))]] as const), ...(process.env.ONLY === 'fields' ? [] : [['value 100KB', (i: number) => sv.update((d) => void (d.n = i))]] as const)] as const) {
  for (let i = 0; i < 300; i++) await op(i);
  const t = performance.now();
  const N = 1000;
  for (let i = 0; i < N; i++) await op(i + 1000);
  console.log(name, (((performance.now() - t) * 1000) / N).toFixed(0), 'us/op');
}
const enc = JSON.stringify(large); let t = performance.now(); for (let i = 0; i < 1000; i++) JSON.stringify(large); console.log('stringify 100KB', ((performance.now() - t)).toFixed(0), 'us/op');
await c.close();
