#!/usr/bin/env node
/**
 * Where the heap grows between two V8 heap snapshots, per object kind:
 *
 *   node bench/tools/heapsnapshot-diff.cjs BEFORE.heapsnapshot AFTER.heapsnapshot [N] [--top 40]
 *
 * Groups nodes by type and constructor/name, prints the growth in count and
 * self size (divided by N, e.g. the number of sockets added in between).
 * Take snapshots of a server with `NODE_OPTIONS=--heapsnapshot-signal=SIGUSR1`.
 */
'use strict';
const fs = require('node:fs');
const [a, b, nArg] = process.argv.slice(2);
const top = Number(process.argv.includes('--top') ? process.argv[process.argv.indexOf('--top') + 1] : 40);
const n = Number(nArg) || 1;

function load(file) {
  const snap = JSON.parse(fs.readFileSync(file, 'utf8'));
  const f = snap.snapshot.meta.node_fields;
  const types = snap.snapshot.meta.node_types[0];
  const iType = f.indexOf('type');
  const iName = f.indexOf('name');
  const iSize = f.indexOf('self_size');
  const width = f.length;
  const groups = new Map();
  const nodes = snap.nodes;
  for (let i = 0; i < nodes.length; i += width) {
    const type = types[nodes[i + iType]];
    let name = snap.strings[nodes[i + iName]];
    if (type === 'string' || type === 'concatenated string' || type === 'sliced string') name = '(string)';
    else if (type === 'code') name = '(code)';
    else if (name.length > 60) name = name.slice(0, 60) + '…';
    const key = `${type}:${name}`;
    let g = groups.get(key);
    if (!g) groups.set(key, (g = { count: 0, size: 0 }));
    g.count++;
    g.size += nodes[i + iSize];
  }
  return groups;
}

const A = load(a);
const B = load(b);
const rows = [];
let total = 0;
for (const [k, g] of B) {
  const o = A.get(k) ?? { count: 0, size: 0 };
  const d = { key: k, count: g.count - o.count, size: g.size - o.size };
  total += d.size;
  rows.push(d);
}
for (const [k, o] of A) if (!B.has(k)) rows.push({ key: k, count: -o.count, size: -o.size });
rows.sort((x, y) => y.size - x.size);
console.log(`self size growth: ${(total / 1024 / n).toFixed(2)} KiB per unit (N=${n})`);
console.log('bytes/unit  count/unit  kind');
for (const r of rows.slice(0, top)) console.log(`${(r.size / n).toFixed(0).padStart(10)}  ${(r.count / n).toFixed(2).padStart(10)}  ${r.key}`);
