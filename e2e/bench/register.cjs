// Lets `node --require ./bench/register.cjs bench/run.ts` run the benchmarks
// (and the e2e harness they reuse) from their TypeScript sources: swc strips
// the types, Node's synchronous module hooks resolve extensionless relative
// imports to .ts files. The same approach as agent/src/test-support/ts-hooks.cjs.
// Everything else (@kapitan/shared, @kapitan/agent and @kapitan/agent/testing, the server) is the
// built JavaScript: run `npm run build` first.
const { registerHooks } = require('node:module');
const { pathToFileURL, fileURLToPath } = require('node:url');
const fs = require('node:fs');
const path = require('node:path');
const { transformSync } = require('@swc/core');

if (typeof registerHooks !== 'function') {
  throw new Error(`the benchmarks need Node >= 24 (this is ${process.version}): run them with \`npm run bench\`, or put node_modules/.bin first in PATH`);
}

registerHooks({
  resolve(specifier, context, nextResolve) {
    const parent = context.parentURL && context.parentURL.startsWith('file:') ? fileURLToPath(context.parentURL) : null;
    if (parent && parent.endsWith('.ts') && (specifier.startsWith('./') || specifier.startsWith('../'))) {
      const base = path.resolve(path.dirname(parent), specifier);
      for (const candidate of [base, base + '.ts', path.join(base, 'index.ts')]) {
        if (candidate.endsWith('.ts') && fs.existsSync(candidate)) return { url: pathToFileURL(candidate).href, format: 'commonjs', shortCircuit: true };
      }
    }
    return nextResolve(specifier, context);
  },
  load(url, context, nextLoad) {
    if (!url.startsWith('file:') || !url.endsWith('.ts')) return nextLoad(url, context);
    const filename = fileURLToPath(url);
    const { code } = transformSync(fs.readFileSync(filename, 'utf8'), {
      filename,
      jsc: { parser: { syntax: 'typescript' }, target: 'es2023' },
      module: { type: 'commonjs' },
      sourceMaps: 'inline',
    });
    return { format: 'commonjs', source: code, shortCircuit: true };
  },
});
