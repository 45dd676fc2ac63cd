/**
 * The `fedsfda-native` tfjs backend: a MathBackendCPU instance carrying every cpu kernel, with the heavy
 * ones (convolutions and their gradients, matmul, pooling, relu) replaced by the native addon's kernels.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import { loadNativeAddon, type NativeAddon } from './native-addon.ts';
import { nativeKernelFuncs } from './native-kernels.ts';
import { nativeElementwiseKernelFuncs } from './native-kernels-elementwise.ts';
import { EngineError } from './errors.ts';

export const NATIVE_BACKEND = 'fedsfda-native';

/** Kernel names overridden with native code (the rest run the cpu backend's JS). */
export let nativeKernelNames: readonly string[] = [];

let registeredWith: NativeAddon | undefined;

/**
 * Registers the backend (idempotent). Throws EngineError('NATIVE_NOT_BUILT') when the addon is missing.
 * Does not make it the active backend: call `tf.setBackend(NATIVE_BACKEND)` for that.
 */
export function registerNativeBackend(): NativeAddon {
  const load = loadNativeAddon();
  if (!load.ok) throw new EngineError('NATIVE_NOT_BUILT', load.reason);
  if (registeredWith) return registeredWith;
  const addon = load.addon;
  tf.registerBackend(NATIVE_BACKEND, () => {
    const backend = new MathBackendCPU();
    // MathBackendCPU prints "install tfjs-node to speed things up" on first use; not true of this backend.
    (backend as unknown as { firstUse: boolean }).firstUse = false;
    return backend;
  }, 1);
  const overrides = { ...nativeKernelFuncs(addon), ...nativeElementwiseKernelFuncs(addon) };
  for (const k of tf.getKernelsForBackend('cpu')) {
    const kernelFunc = overrides[k.kernelName] ?? k.kernelFunc;
    tf.registerKernel({ ...k, backendName: NATIVE_BACKEND, kernelFunc });
  }
  nativeKernelNames = Object.keys(overrides);
  registeredWith = addon;
  return addon;
}
