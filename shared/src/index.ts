export * from './limits';
export * from './common';
export * from './auth';
export * from './projects';
export * from './machines';
export * from './executions';
export * from './events';
export * from './validate';
