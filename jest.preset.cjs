// One jest setup for every Node package: swc compiles TypeScript (with the
// decorator metadata Nest needs) far faster than ts-jest, and @kapitan/shared
// resolves to its sources so tests never depend on a stale build.
const path = require('node:path');
module.exports = {
  testEnvironment: 'node',
  testMatch: ['<rootDir>/src/**/*.spec.ts', '<rootDir>/test/**/*.spec.ts'],
  transform: {
    '^.+\\.ts$': [
      '@swc/jest',
      {
        jsc: {
          parser: { syntax: 'typescript', decorators: true },
          transform: { legacyDecorator: true, decoratorMetadata: true },
          target: 'es2023',
        },
        module: { type: 'commonjs' },
      },
    ],
  },
  moduleNameMapper: {
    '^@kapitan/shared$': path.join(__dirname, 'shared/src/index.ts'),
  },
};
