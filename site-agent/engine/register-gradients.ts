/**
 * Registers tfjs-core's gradient functions (tfjs-core does not register them by itself).
 * Under vitest/bundlers `import '@tensorflow/tfjs-core/dist/register_all_gradients'` works; under plain
 * Node (tsx) it does not: Node resolves tfjs-core to its CommonJS bundle, which carries no gradients, and
 * the ESM gradient files use extensionless imports (ERR_UNSUPPORTED_DIR_IMPORT). So we bundle the ESM
 * entry once in memory with esbuild (shipped with tsx) and import it; it registers into tfjs's global
 * gradient registry (`getGlobal('gradRegistry')`) and runs its ops on the global engine, which the
 * CommonJS instance shares. (Same approach as simulations/sfda/tf-node-gradients.ts, which can now
 * delegate here.)
 */
import * as tf from '@tensorflow/tfjs-core';

let done = false;

export async function ensureGradientsRegistered(): Promise<void> {
  if (done || tf.getGradient(tf.Conv2D) !== undefined) {
    done = true;
    return;
  }
  const { buildSync } = await import('esbuild');
  const r = buildSync({
    entryPoints: ['@tensorflow/tfjs-core/dist/register_all_gradients.js'],
    bundle: true,
    format: 'esm',
    platform: 'node',
    write: false,
    logLevel: 'silent',
  });
  const code = r.outputFiles[0]?.text;
  if (code === undefined) throw new Error('esbuild produced no output for register_all_gradients');
  await import('data:text/javascript;base64,' + Buffer.from(code).toString('base64'));
  if (tf.getGradient(tf.Conv2D) === undefined) throw new Error('registering tfjs gradients failed');
  done = true;
}
