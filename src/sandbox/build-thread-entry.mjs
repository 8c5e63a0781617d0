// The entry of a build's sandbox thread. Node 20 does not run `--import` hooks in worker
// threads, so TypeScript is registered here (tsx's API) before the thread's module loads.
import { register } from 'tsx/esm/api';

register();
await import('./build-thread.ts');
