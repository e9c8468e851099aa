import { enableCompileCache } from 'node:module';

// First of main's imports, so that the modules after it are compiled from V8's cache on every
// start but the first (NODE_COMPILE_CACHE names the directory; the default is under the temp
// directory). About a fifth of a start was compiling the same code again.
enableCompileCache();
