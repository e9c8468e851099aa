// Lets `node --require ./ts-hooks.cjs src/main.ts` run the agent from its
// TypeScript sources (tests spawn the real CLI as a process without a build).
// Uses Node's synchronous module hooks and swc, like the jest preset.
const { registerHooks } = require('node:module');
const { pathToFileURL, fileURLToPath } = require('node:url');
const fs = require('node:fs');
const path = require('node:path');
const { transformSync } = require('@swc/core');

const sharedIndex = path.resolve(__dirname, '../../../shared/src/index.ts');

registerHooks({
  resolve(specifier, context, nextResolve) {
    if (specifier === '@kapitan/shared') return { url: pathToFileURL(sharedIndex).href, format: 'commonjs', shortCircuit: true };
    const parent = context.parentURL && context.parentURL.startsWith('file:') ? fileURLToPath(context.parentURL) : null;
    if (parent && parent.endsWith('.ts') && (specifier.startsWith('./') || specifier.startsWith('../'))) {
      const base = path.resolve(path.dirname(parent), specifier);
      for (const candidate of [base + '.ts', path.join(base, 'index.ts')]) {
        if (fs.existsSync(candidate)) return { url: pathToFileURL(candidate).href, format: 'commonjs', shortCircuit: true };
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
