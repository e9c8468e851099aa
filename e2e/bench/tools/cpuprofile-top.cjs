#!/usr/bin/env node
/**
 * Summarises a V8 .cpuprofile (node --cpu-prof): the functions with the most
 * self time and the heaviest call paths, optionally inside a time window.
 *
 *   node bench/tools/cpuprofile-top.cjs FILE [--from SEC] [--to SEC] [--top N] [--match REGEX]
 *
 * --from/--to are seconds from the start of the profile. --match keeps only
 * samples whose stack has a frame matching REGEX (url or function name).
 */
'use strict';
const fs = require('node:fs');
const args = process.argv.slice(2);
const file = args[0];
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : dflt;
};
const from = Number(opt('--from', 0)) * 1e6;
const to = Number(opt('--to', Infinity)) * 1e6;
const top = Number(opt('--top', 25));
const match = opt('--match', null);
const re = match ? new RegExp(match) : null;

const p = JSON.parse(fs.readFileSync(file, 'utf8'));
const nodes = new Map(p.nodes.map((n) => [n.id, n]));
const parent = new Map();
for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const short = (n) => {
  const f = n.callFrame;
  const url = f.url.replace(/^file:\/\//, '').replace(/.*node_modules\//, '~/').replace(/.*\/work\/main\//, '');
  return `${f.functionName || '(anonymous)'} ${url}:${f.lineNumber + 1}`;
};
const self = new Map();
const total = new Map();
const paths = new Map();
let t = p.startTime;
let counted = 0;
let idle = 0;
for (let i = 0; i < p.samples.length; i++) {
  t += p.timeDeltas[i];
  const rel = t - p.startTime;
  if (rel < from || rel > to) continue;
  const id = p.samples[i];
  const n = nodes.get(id);
  const name = n.callFrame.functionName;
  if (name === '(idle)' || name === '(program)') {
    if (name === '(idle)') idle++;
    continue;
  }
  const stack = [];
  for (let x = id; x !== undefined; x = parent.get(x)) stack.push(nodes.get(x));
  if (re && !stack.some((s) => re.test(s.callFrame.functionName) || re.test(s.callFrame.url))) continue;
  counted++;
  self.set(short(n), (self.get(short(n)) ?? 0) + 1);
  const seen = new Set();
  for (const s of stack) {
    const k = short(s);
    if (seen.has(k)) continue;
    seen.add(k);
    total.set(k, (total.get(k) ?? 0) + 1);
  }
  const path = stack.slice(0, 6).map(short).reverse().join(' > ');
  paths.set(path, (paths.get(path) ?? 0) + 1);
}
const interval = (p.endTime - p.startTime) / p.samples.length;
const pct = (v) => ((v / Math.max(1, counted)) * 100).toFixed(1).padStart(5) + '%';
console.log(`${file}: ${counted} busy samples (${((counted * interval) / 1e6).toFixed(1)} s), ${idle} idle, ~${interval.toFixed(0)} µs/sample`);
console.log('\n-- self time');
for (const [k, v] of [...self].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(pct(v), k);
console.log('\n-- total time (inclusive)');
for (const [k, v] of [...total].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(pct(v), k);
console.log('\n-- heaviest leaf paths (6 frames)');
for (const [k, v] of [...paths].sort((a, b) => b[1] - a[1]).slice(0, Math.min(top, 15))) console.log(pct(v), k);
