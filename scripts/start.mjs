#!/usr/bin/env node
// `npm start`: build what is missing or older than its sources (shared,
// server, agent, web), then run the server in the foreground with this
// environment (PORT, KAPITAN_DATA_DIR, DATABASE_URL …); the server goes down
// when we do, however we go (see below).
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '..');
const bin = path.join(root, 'node_modules', '.bin');
const node = Number(process.versions.node.split('.')[0]) >= 24 ? process.execPath : path.join(bin, 'node');
const env = { ...process.env, PATH: `${bin}${path.delimiter}${process.env.PATH ?? ''}` };
const npm = /npm-cli\.js$/.test(process.env.npm_execpath ?? '') ? [node, process.env.npm_execpath] : ['npm'];

/** Each workspace: the file its build writes last, and what the build reads. */
const workspaces = [
  { name: 'shared', output: 'shared/dist/index.js', inputs: ['shared/src', 'shared/package.json', 'shared/tsconfig.json', 'shared/tsconfig.build.json'] },
  { name: 'server', output: 'server/dist/main.js', inputs: ['server/src', 'server/package.json', 'server/tsconfig.json', 'server/tsconfig.build.json', 'shared/src'] },
  { name: 'agent', output: 'agent/dist/main.js', inputs: ['agent/src', 'agent/package.json', 'agent/tsconfig.json', 'agent/tsconfig.build.json', 'shared/src'] },
  {
    name: 'web',
    output: 'web/dist/web/browser/index.html',
    inputs: ['web/src', 'web/public', 'web/package.json', 'web/angular.json', 'web/tsconfig.json', 'web/tsconfig.app.json', 'shared/src'],
  },
];

/** Newest modification time under `p` (a file or a folder), 0 when absent. */
function newest(p) {
  let stat;
  try {
    stat = fs.statSync(p);
  } catch {
    return 0;
  }
  if (!stat.isDirectory()) return stat.mtimeMs;
  let max = stat.mtimeMs; // a deleted file shows as a newer folder
  for (const entry of fs.readdirSync(p)) max = Math.max(max, newest(path.join(p, entry)));
  return max;
}

let sharedBuilt = false;
for (const ws of workspaces) {
  const built = newest(path.join(root, ws.output));
  const sources = Math.max(...ws.inputs.map((input) => newest(path.join(root, input))));
  if (built > 0 && built >= sources && !sharedBuilt) continue;
  console.log(`start: building ${ws.name} (${built === 0 ? 'not built yet' : sharedBuilt ? 'shared was rebuilt' : 'sources changed'})`);
  const result = spawnSync(npm[0], [...npm.slice(1), 'run', 'build', '-w', ws.name], { cwd: root, env, stdio: 'inherit' });
  if (result.status !== 0) {
    console.error(`start: building ${ws.name} failed`);
    process.exit(result.status ?? 1);
  }
  if (ws.name === 'shared') sharedBuilt = true;
}

// The server stays in our process group, so a Ctrl-C on the terminal (or a
// signal to the whole group from a supervisor, `timeout`, a test harness)
// reaches it directly. It also holds an IPC channel to us: when we die,
// however we die (SIGKILL included), the channel closes and the server stops
// gracefully on its own. A signal sent to us alone closes the channel too.
const server = spawn(node, [path.join(root, 'server/dist/main.js')], { cwd: root, env: process.env, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
let firstSignalAt = 0;
const stopServer = () => {
  if (server.connected) server.disconnect();
};
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(signal, () => {
    if (firstSignalAt === 0) {
      firstSignalAt = Date.now();
      stopServer();
    } else if (Date.now() - firstSignalAt > 1_000) {
      // A second signal a while after the first: the user wants it gone now.
      server.kill('SIGKILL');
    }
  });
}
// npm and the shell it runs us through may be killed without us being told
// (SIGKILL of `npm` alone leaves `sh` and us behind, re-parented): we watch
// that whole chain, and our parent changing, and go when any of it is gone.
const parentAtStart = process.ppid;
const launchers = launcherChain(process.ppid);
setInterval(() => {
  if (process.ppid !== parentAtStart || launchers.some((pid) => !alive(pid))) stopServer();
}, 500).unref();

/** Our parent, and its parents while they are npm or a shell (Linux /proc; elsewhere just the parent). */
function launcherChain(pid) {
  const chain = [];
  for (let depth = 0; pid > 1 && depth < 8; depth++) {
    let stat, cmdline;
    try {
      stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    } catch {
      break;
    }
    const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
    const isShell = ['sh', 'dash', 'bash'].includes(comm);
    // npm retitles itself (`npm start`), which shows in both comm and cmdline.
    const isNpm = /^npm( |$)/.test(comm) || cmdline.some((arg) => /(^|\/)npm(-cli\.js)?$|^npm /.test(arg));
    if (depth > 0 && !isShell && !isNpm) break;
    chain.push(pid);
    pid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  }
  return chain;
}

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return error.code === 'EPERM';
  }
}
process.on('exit', () => {
  if (server.exitCode === null && server.signalCode === null) server.kill('SIGKILL');
});
server.on('error', (error) => {
  console.error(`start: cannot run the server: ${error.message}`);
  process.exit(1);
});
server.on('exit', (code, signal) => {
  process.exit(code ?? 128 + (os.constants.signals[signal] ?? 0));
});
