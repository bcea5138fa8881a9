import pg from 'pg';
import { performance } from 'node:perf_hooks';
const stats = new Map();
const orig = pg.Client.prototype.query;
pg.Client.prototype.query = function (config, values, cb) {
  const text = typeof config === 'string' ? config : config.text;
  const key = (text ?? '').trim().replace(/rls_audit_\d+/g, 'N').slice(0, 40);
  const started = performance.now();
  const p = orig.call(this, config, values, cb);
  if (p && p.then) p.then(() => { const s = stats.get(key) ?? { n: 0, ms: 0 }; s.n++; s.ms += performance.now() - started; stats.set(key, s); }, () => {});
  return p;
};
process.on('exit', () => {
  const sorted = [...stats].sort((a, b) => b[1].ms - a[1].ms).slice(0, 30);
  for (const [k, s] of sorted) console.error(`${s.ms.toFixed(0).padStart(7)} ms ${String(s.n).padStart(6)}x ${k}`);
});
await import('./audit.mjs');
