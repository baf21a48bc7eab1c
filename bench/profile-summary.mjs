#!/usr/bin/env node
// Where the relay's main thread spends its time, from `node --cpu-prof` output
// (node bench/run.mjs --cpu-prof DIR): self time grouped by package (or by our source file),
// then the top functions. Usage: node bench/profile-summary.mjs FILE.cpuprofile [--top N]
import { readFileSync } from 'node:fs';

const args = process.argv.slice(2);
const file = args.find((a) => a.endsWith('.cpuprofile'));
if (!file) {
  process.stderr.write('usage: node bench/profile-summary.mjs FILE.cpuprofile [--top N]\n');
  process.exit(1);
}
const topIndex = args.indexOf('--top');
const TOP = topIndex >= 0 ? Number(args[topIndex + 1]) : 25;

const profile = JSON.parse(readFileSync(file, 'utf8'));
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const selfUs = new Map();
// samples[i] was taken timeDeltas[i] µs after the previous one; charge that time to it.
profile.samples.forEach((id, i) => selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));

/** The bucket a frame belongs to: an npm package, one of our files, node internals or V8. */
function bucket(frame) {
  const url = frame.url ?? '';
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return pkg[1];
  const ours = /\/(dist|src)\/(.+)$/.exec(url);
  if (ours) return `onward:${ours[2]}`;
  if (url.startsWith('node:')) return `node:${url.slice(5).split('/')[0]}`;
  return frame.functionName ? `(${frame.functionName})` : '(native)';
}

const total = [...selfUs.values()].reduce((a, b) => a + b, 0);
const buckets = new Map();
const functions = new Map();
for (const [id, us] of selfUs) {
  const frame = byId.get(id).callFrame;
  const b = bucket(frame);
  buckets.set(b, (buckets.get(b) ?? 0) + us);
  const fn = `${frame.functionName || '(anonymous)'} ${b}:${frame.lineNumber + 1}`;
  functions.set(fn, (functions.get(fn) ?? 0) + us);
}
const pct = (us) => `${((us / total) * 100).toFixed(1).padStart(5)} %`;
const show = (title, map) => {
  process.stdout.write(`\n${title}\n`);
  for (const [k, us] of [...map].sort((a, b) => b[1] - a[1]).slice(0, TOP)) process.stdout.write(`${pct(us)}  ${k}\n`);
};
process.stdout.write(`${file}: ${(total / 1e6).toFixed(1)} s sampled\n`);
show('self time by package / file', buckets);
show('self time by function', functions);
