#!/usr/bin/env node
/**
 * The agent as clients receive it, built from agent/dist (run `npm run build
 * -w agent` first):
 *
 *   dist/bundle/kapitan-agent.cjs   one JavaScript file, no node_modules,
 *                                   runs on the Node >= 20 a client may have
 *   dist/sea/kapitan-agent          (with --sea) a standalone linux-x64
 *                                   executable: Node's single executable
 *                                   application, the bundle injected into
 *                                   the Node binary running this script
 *   dist/bun/kapitan-agent          (with --bun) the same bundle compiled
 *                                   by Bun (`bun build --compile`, Bun from
 *                                   the npm registry): the other standalone
 *                                   candidate, compared by the footprint
 *                                   scenario and the e2e suite
 *                                   (KAPITAN_E2E_AGENT_FORM=bun)
 *
 * The version is baked in at build time: a bundle has no package.json beside it.
 */
import { build } from 'esbuild';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const agentDir = path.resolve(import.meta.dirname, '..');
const pkg = JSON.parse(fs.readFileSync(path.join(agentDir, 'package.json'), 'utf8'));
const outFile = path.join(agentDir, 'dist/bundle/kapitan-agent.cjs');

/**
 * Modules of dependencies the agent never uses, replaced by stubs that fail
 * clearly if they ever were: they are loaded at require time and would sit
 * in every idle agent's memory (see scripts/stubs/).
 */
const STUBS = [
  { importer: /[\\/]dockerode[\\/]lib[\\/]docker\.js$/, request: './session', stub: 'dockerode-session.cjs' },
  { importer: /[\\/]docker-modem[\\/]lib[\\/]modem\.js$/, request: './ssh', stub: 'docker-modem-ssh.cjs' },
];
const stubPlugin = {
  name: 'kapitan-agent-stubs',
  setup(b) {
    b.onResolve({ filter: /^\.\/(session|ssh)$/ }, (args) => {
      const hit = STUBS.find((s) => s.request === args.path && s.importer.test(args.importer));
      return hit ? { path: path.join(agentDir, 'scripts/stubs', hit.stub) } : undefined;
    });
  },
};

await build({
  entryPoints: [path.join(agentDir, 'dist/main.js')],
  outfile: outFile,
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  // Names kept: the agent's logs carry stack traces a maintainer must read.
  minifyWhitespace: true,
  minifySyntax: true,
  legalComments: 'none',
  plugins: [stubPlugin],
  define: { KAPITAN_AGENT_BUILD_VERSION: JSON.stringify(pkg.version) },
  logLevel: 'warning',
});
fs.chmodSync(outFile, 0o755);
console.log(`bundle: ${path.relative(process.cwd(), outFile)} (${(fs.statSync(outFile).size / 1024).toFixed(0)} KiB)`);

if (process.argv.includes('--sea')) {
  const seaDir = path.join(agentDir, 'dist/sea');
  fs.mkdirSync(seaDir, { recursive: true });
  const blob = path.join(seaDir, 'kapitan-agent.blob');
  const config = path.join(seaDir, 'sea-config.json');
  const exe = path.join(seaDir, 'kapitan-agent');
  fs.writeFileSync(config, JSON.stringify({ main: outFile, output: blob, disableExperimentalSEAWarning: true, useCodeCache: false, useSnapshot: false }));
  execFileSync(process.execPath, ['--experimental-sea-config', config], { stdio: 'inherit' });
  fs.copyFileSync(process.execPath, exe);
  fs.chmodSync(exe, 0o755);
  const { inject } = await import('postject');
  await inject(exe, 'NODE_SEA_BLOB', fs.readFileSync(blob), { sentinelFuse: 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2' });
  fs.rmSync(blob);
  fs.rmSync(config);
  console.log(`sea: ${path.relative(process.cwd(), exe)} (${(fs.statSync(exe).size / 1024 / 1024).toFixed(0)} MiB)`);
}

if (process.argv.includes('--bun')) {
  const bun = path.join(path.dirname(fileURLToPath(import.meta.resolve('@oven/bun-linux-x64/package.json'))), 'bin/bun');
  const exe = path.join(agentDir, 'dist/bun/kapitan-agent');
  fs.mkdirSync(path.dirname(exe), { recursive: true });
  execFileSync(bun, ['build', '--compile', '--target=bun-linux-x64', outFile, '--outfile', exe], { stdio: ['ignore', 'ignore', 'inherit'] });
  console.log(`bun: ${path.relative(process.cwd(), exe)} (${(fs.statSync(exe).size / 1024 / 1024).toFixed(0)} MiB)`);
}
