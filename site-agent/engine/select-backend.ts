/**
 * Backend selection for the compute engine (DESIGN.md section 3). Candidates in priority order:
 * tfjs-node-gpu, tfjs-node (optional packages, normally not installed), fedsfda-native (our compiled
 * kernels), wasm (with our training kernels), cpu (pure JS). The first that loads and passes a tiny
 * self-check (a conv forward + both gradients against a JS reference) wins. `FEDSFDA_BACKEND` or
 * `initEngine({ backend })` forces one; an unknown or unavailable name is an EngineError naming the
 * valid values. Model code then just uses tf.* ops.
 */
import * as tf from '@tensorflow/tfjs-core';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { availableParallelism } from 'node:os';
import { EngineError } from './errors.ts';
import { ensureGradientsRegistered } from './register-gradients.ts';
import { NATIVE_BACKEND, registerNativeBackend } from './native-backend.ts';
import { registerWasmTrainingKernels } from './wasm-kernels.ts';
import { selfCheck } from './self-check.ts';

export const BACKEND_CANDIDATES = ['tfjs-node-gpu', 'tfjs-node', 'fedsfda-native', 'wasm', 'cpu'] as const;
export type EngineBackend = (typeof BACKEND_CANDIDATES)[number];

export interface BackendAttempt {
  name: EngineBackend;
  ok: boolean;
  /** Why it was not usable (or not tried). */
  reason?: string;
}

export interface EngineInfo {
  /** The candidate that won. */
  backend: EngineBackend;
  /** tfjs's name for the active backend (`tf.getBackend()`), e.g. 'tensorflow' for tfjs-node. */
  tfBackend: string;
  tried: BackendAttempt[];
  /** Threads the backend's kernels use. */
  threads: number;
  /** Whether the kernels are SIMD-vectorised, and which instruction set. */
  simd: boolean;
  simdDetail: string;
  versions: Record<string, string>;
}

export interface InitEngineOptions {
  /** Force a backend (overrides FEDSFDA_BACKEND). Aliases: 'native' = 'fedsfda-native', 'node' = 'tfjs-node'. */
  backend?: string;
  /** Probe every candidate (for `fedsfda doctor`), still selecting the first that works. */
  probeAll?: boolean;
}

const ALIASES: Record<string, EngineBackend> = {
  native: 'fedsfda-native',
  node: 'tfjs-node',
  'node-gpu': 'tfjs-node-gpu',
  tensorflow: 'tfjs-node',
};

function parseBackend(name: string): EngineBackend {
  const n = name.trim().toLowerCase();
  if ((BACKEND_CANDIDATES as readonly string[]).includes(n)) return n as EngineBackend;
  const a = ALIASES[n];
  if (a) return a;
  throw new EngineError('UNKNOWN_BACKEND', `unknown backend "${name}"; valid values: ${BACKEND_CANDIDATES.join(', ')} (aliases: ${Object.keys(ALIASES).join(', ')})`);
}

const require = createRequire(import.meta.url);

/** Loads a candidate and makes it the active tfjs backend. Throws with a reason when unusable. */
async function activate(name: EngineBackend): Promise<{ threads: number; simd: boolean; simdDetail: string; versions: Record<string, string> }> {
  switch (name) {
    case 'tfjs-node-gpu':
    case 'tfjs-node': {
      const pkg = name === 'tfjs-node-gpu' ? '@tensorflow/tfjs-node-gpu' : '@tensorflow/tfjs-node';
      let mod: { version?: Record<string, string> };
      try {
        // A variable specifier: these packages are optional and normally absent, so TypeScript must not resolve them.
        mod = (await import(pkg)) as typeof mod;
      } catch (e) {
        throw new Error(`${pkg} not installed or failed to load (${firstLine(e)})`);
      }
      if (!(await tf.setBackend('tensorflow'))) throw new Error(`${pkg} loaded but backend 'tensorflow' failed to initialise`);
      return { threads: availableParallelism(), simd: true, simdDetail: 'libtensorflow (CPU/GPU kernels)', versions: { [pkg]: mod.version?.['tfjs-node'] ?? 'unknown' } };
    }
    case 'fedsfda-native': {
      const addon = registerNativeBackend();
      const t = process.env.FEDSFDA_THREADS;
      if (t !== undefined) {
        const n = Number(t);
        if (!Number.isInteger(n) || n < 1 || n > 256) throw new EngineError('BAD_ARGUMENT', `FEDSFDA_THREADS must be an integer in [1, 256], got "${t}"`);
        addon.threads(n);
      }
      if (!(await tf.setBackend(NATIVE_BACKEND))) throw new Error(`backend ${NATIVE_BACKEND} failed to initialise`);
      return { threads: addon.threads(), simd: addon.simd() !== 'scalar', simdDetail: addon.simd(), versions: { 'fedsfda-native': 'built from site-agent/engine/native' } };
    }
    case 'wasm': {
      const wasm = await import('@tensorflow/tfjs-backend-wasm');
      // In Node the .wasm files are read from the package's dist folder; point the loader there.
      wasm.setWasmPaths(dirname(require.resolve('@tensorflow/tfjs-backend-wasm')) + '/');
      registerWasmTrainingKernels();
      if (!(await tf.setBackend('wasm'))) throw new Error('wasm backend failed to initialise');
      const simd = (await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT')) === true;
      return { threads: wasm.getThreadsCount(), simd, simdDetail: simd ? 'wasm simd128' : 'none', versions: { 'tfjs-backend-wasm': wasm.version_wasm } };
    }
    case 'cpu': {
      const cpu = await import('@tensorflow/tfjs-backend-cpu');
      if (!(await tf.setBackend('cpu'))) throw new Error('cpu backend failed to initialise');
      return { threads: 1, simd: false, simdDetail: 'none (pure JavaScript)', versions: { 'tfjs-backend-cpu': cpu.version_cpu } };
    }
    default: {
      const never: never = name;
      throw new EngineError('UNKNOWN_BACKEND', `unknown backend ${String(never)}`);
    }
  }
}

function firstLine(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split('\n')[0].slice(0, 200);
}

let current: Promise<EngineInfo> | undefined;

/**
 * Selects and activates the backend (idempotent: later calls return the first call's info).
 * @example
 *   const info = await initEngine();            // or FEDSFDA_BACKEND=wasm
 *   console.log(info.backend, info.threads);
 */
export function initEngine(opts: InitEngineOptions = {}): Promise<EngineInfo> {
  current ??= select(opts).catch((e: unknown) => {
    current = undefined;  // a failed selection may be retried (e.g. after building the addon)
    throw e;
  });
  return current;
}

/** Forgets the selection so the next initEngine() selects again (tests; backends stay registered). */
export function resetEngine(): void {
  current = undefined;
}

async function select(opts: InitEngineOptions): Promise<EngineInfo> {
  await ensureGradientsRegistered();
  const forcedRaw = opts.backend ?? process.env.FEDSFDA_BACKEND;
  const forced = forcedRaw !== undefined && forcedRaw !== '' ? parseBackend(forcedRaw) : undefined;
  const tried: BackendAttempt[] = [];
  const order = forced ? [forced] : [...BACKEND_CANDIDATES];
  let winner: { name: EngineBackend; detail: Awaited<ReturnType<typeof activate>> } | undefined;
  const versions: Record<string, string> = {};
  for (const name of order) {
    if (winner && !opts.probeAll) {
      tried.push({ name, ok: false, reason: `not tried: ${winner.name} was selected first` });
      continue;
    }
    try {
      const detail = await activate(name);
      selfCheck();
      Object.assign(versions, detail.versions);
      tried.push({ name, ok: true });
      winner ??= { name, detail };
    } catch (e) {
      tried.push({ name, ok: false, reason: firstLine(e) });
    }
  }
  if (forced && !winner) {
    throw new EngineError('BACKEND_UNAVAILABLE', `FEDSFDA_BACKEND/backend "${forced}" is unavailable: ${tried[0]?.reason}; valid values: ${BACKEND_CANDIDATES.join(', ')}`);
  }
  if (!winner) throw new EngineError('BACKEND_UNAVAILABLE', `no backend passed its self-check: ${tried.map((t) => `${t.name}: ${t.reason}`).join('; ')}`);
  if (forced) {
    for (const name of BACKEND_CANDIDATES) if (name !== forced) tried.push({ name, ok: false, reason: `not tried: FEDSFDA_BACKEND/backend forced ${forced}` });
  }
  if (opts.probeAll) await activate(winner.name);  // probing later candidates switched the active backend
  const cpu = await import('@tensorflow/tfjs-backend-cpu');
  return {
    backend: winner.name,
    tfBackend: tf.getBackend(),
    tried,
    threads: winner.detail.threads,
    simd: winner.detail.simd,
    simdDetail: winner.detail.simdDetail,
    versions: {
      node: process.versions.node,
      napi: process.versions.napi ?? 'unknown',
      'tfjs-core': tf.version_core,
      'tfjs-backend-cpu': cpu.version_cpu,
      ...versions,
    },
  };
}
