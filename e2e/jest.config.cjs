// e2e: real server, agent, MariaDB and Chromium processes. One file at a time
// (runInBand): suites start processes on free ports and share the machine's
// MariaDB, and their timing is easier to read one after another.
const preset = require('../jest.preset.cjs');

module.exports = {
  ...preset,
  rootDir: __dirname,
  displayName: 'e2e',
  testMatch: ['<rootDir>/src/**/*.spec.ts', '<rootDir>/tests/**/*.spec.ts'],
  // Calls the harness's failure hooks (screenshots, process logs) the moment a
  // test or hook fails, before afterEach/afterAll tear the processes down.
  testEnvironment: '<rootDir>/jest.environment.cjs',
  setupFilesAfterEnv: ['<rootDir>/src/harness/jest.setup.ts'],
  maxWorkers: 1,
  testTimeout: 120_000,
  slowTestThreshold: 30,
};
