/**
 * Node built-ins that a run may not need, loaded on first use (synchronously, through
 * `require`): zlib (gzip input, compressed payloads), worker_threads (the sinks' threads), v8, vm
 * and perf_hooks (heap.ts). Importing them up front cost `pcapflow read` some milliseconds of
 * start-up each (bench/PROFILE.md, "Seventh pass").
 */
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

export const zlib = (): typeof import('node:zlib') => require('node:zlib') as typeof import('node:zlib');
export const workerThreads = (): typeof import('node:worker_threads') => require('node:worker_threads') as typeof import('node:worker_threads');
export const v8 = (): typeof import('node:v8') => require('node:v8') as typeof import('node:v8');
export const vm = (): typeof import('node:vm') => require('node:vm') as typeof import('node:vm');
export const perfHooks = (): typeof import('node:perf_hooks') => require('node:perf_hooks') as typeof import('node:perf_hooks');
