import { describe, expect, it, afterEach } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import { initEngine, resetEngine, BACKEND_CANDIDATES } from './select-backend.ts';
import { EngineError } from './errors.ts';
import { loadNativeAddon, loadNativeAddonChecked } from './native-addon.ts';

describe('initEngine backend selection', () => {
  const saved = process.env.FEDSFDA_BACKEND;
  afterEach(() => {
    if (saved === undefined) delete process.env.FEDSFDA_BACKEND;
    else process.env.FEDSFDA_BACKEND = saved;
    resetEngine();
  });

  it('honours FEDSFDA_BACKEND and reports the others as not tried', async () => {
    process.env.FEDSFDA_BACKEND = 'cpu';
    const info = await initEngine();
    expect(info.backend).toBe('cpu');
    expect(tf.getBackend()).toBe('cpu');
    expect(info.tried.map((t) => t.name).sort()).toEqual([...BACKEND_CANDIDATES].sort());
    expect(info.tried.find((t) => t.name === 'cpu')).toEqual({ name: 'cpu', ok: true });
    expect(info.tried.find((t) => t.name === 'wasm')?.reason).toMatch(/forced cpu/);
  });

  it('is idempotent: a second call returns the same info', async () => {
    process.env.FEDSFDA_BACKEND = 'cpu';
    const a = await initEngine();
    const b = await initEngine();
    expect(b).toBe(a);
  });

  it('rejects an unknown backend with an error naming the valid values', async () => {
    process.env.FEDSFDA_BACKEND = 'quantum';
    const err = await initEngine().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EngineError);
    expect((err as EngineError).code).toBe('UNKNOWN_BACKEND');
    expect((err as EngineError).message).toMatch(/quantum.*tfjs-node-gpu, tfjs-node, fedsfda-native, wasm, cpu/);
  });

  it('a forced but unavailable backend is an error with the reason', async () => {
    // fedsfda-native is made unusable on purpose (a bad FEDSFDA_THREADS) where the addon loads; where it
    // did not build it is unusable anyway. Either way the forced selection must fail with the reason.
    const savedThreads = process.env.FEDSFDA_THREADS;
    try {
      if (loadNativeAddon().ok) process.env.FEDSFDA_THREADS = 'many';
      const err = await initEngine({ backend: 'native' }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(EngineError);
      expect((err as EngineError).code).toBe('BACKEND_UNAVAILABLE');
      expect((err as EngineError).message).toMatch(/fedsfda-native" is unavailable: .*(FEDSFDA_THREADS must be an integer|addon)/);
    } finally {
      if (savedThreads === undefined) delete process.env.FEDSFDA_THREADS;
      else process.env.FEDSFDA_THREADS = savedThreads;
    }
  });

  it('a forced optional node backend either works or fails with the package named (installed or not)', async () => {
    for (const [name, pkg] of [['tfjs-node', '@tensorflow/tfjs-node'], ['tfjs-node-gpu', '@tensorflow/tfjs-node-gpu']] as const) {
      resetEngine();
      const r = await initEngine({ backend: name }).then((info) => info, (e: unknown) => e);
      if (r instanceof EngineError) {
        expect(r.code).toBe('BACKEND_UNAVAILABLE');
        expect(r.message).toContain(pkg);
      } else {
        expect((r as { backend: string }).backend).toBe(name);
      }
    }
  });

  it.skipIf(!loadNativeAddonChecked().ok)('FEDSFDA_THREADS sets the native pool size and rejects nonsense', async () => {
    const savedThreads = process.env.FEDSFDA_THREADS;
    const l = loadNativeAddon();
    const poolBefore = l.ok ? l.addon.threads() : 1;
    try {
      process.env.FEDSFDA_THREADS = 'many';
      const err = await initEngine({ backend: 'native' }).catch((e: unknown) => e);
      expect((err as EngineError).code).toBe('BACKEND_UNAVAILABLE');
      expect((err as EngineError).message).toMatch(/FEDSFDA_THREADS must be an integer/);
      process.env.FEDSFDA_THREADS = '1';
      const info = await initEngine({ backend: 'native' });
      expect(info.backend).toBe('fedsfda-native');
      expect(info.threads).toBe(1);
    } finally {
      if (savedThreads === undefined) delete process.env.FEDSFDA_THREADS;
      else process.env.FEDSFDA_THREADS = savedThreads;
      if (l.ok) l.addon.threads(poolBefore);
    }
  });

  it('automatic selection picks the first candidate that works, in priority order, with reasons for the others', async () => {
    delete process.env.FEDSFDA_BACKEND;
    const info = await initEngine({ probeAll: true });
    const byName = Object.fromEntries(info.tried.map((t) => [t.name, t]));
    expect(info.tried.map((t) => t.name)).toEqual([...BACKEND_CANDIDATES]);
    for (const t of info.tried) if (!t.ok) expect(t.reason, t.name).toMatch(/\S/);
    // The optional node backends: either usable, or skipped because the package is absent or broken.
    for (const name of ['tfjs-node-gpu', 'tfjs-node'] as const) {
      if (!byName[name].ok) expect(byName[name].reason).toMatch(/not installed or failed to load|failed to initialise|self-check/i);
    }
    expect(byName['fedsfda-native'].ok).toBe(loadNativeAddon().ok);
    expect(byName.cpu.ok).toBe(true);
    expect(byName.wasm.ok).toBe(true);
    const expected = BACKEND_CANDIDATES.find((n) => byName[n].ok);
    expect(info.backend).toBe(expected);
    expect(info.threads).toBeGreaterThanOrEqual(1);
    expect(info.versions['tfjs-core']).toBe(tf.version_core);
  });
});
