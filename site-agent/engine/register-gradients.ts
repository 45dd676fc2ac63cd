/**
 * Registers tfjs-core's gradient functions (tfjs-core does not register them by itself).
 * Under vitest/bundlers `import '@tensorflow/tfjs-core/dist/register_all_gradients'` works; under plain
 * Node (tsx) it does not: Node resolves tfjs-core to its CommonJS bundle, which carries no gradients, and
 * the ESM gradient files use extensionless imports (ERR_UNSUPPORTED_DIR_IMPORT). So we bundle the ESM
 * entry once in memory with esbuild (shipped with tsx) and import it; it registers into tfjs's global
 * gradient registry (`getGlobal('gradRegistry')`) and runs its ops on the global engine, which the
 * CommonJS instance shares.
 *
 * The entry is resolved from this package (createRequire(import.meta.url)) and esbuild works from the
 * file's own folder, so this works from any working directory (a CLI started outside the repository).
 */
import * as tf from '@tensorflow/tfjs-core';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';

let done = false;

/** Absolute path of tfjs-core's ESM gradient registration entry, resolved from this package. */
export function gradientsEntryPath(): string {
  return createRequire(import.meta.url).resolve('@tensorflow/tfjs-core/dist/register_all_gradients.js');
}

export async function ensureGradientsRegistered(): Promise<void> {
  if (done || tf.getGradient(tf.Conv2D) !== undefined) {
    done = true;
    return;
  }
  const { buildSync } = await import('esbuild');
  const entry = gradientsEntryPath();
  const r = buildSync({
    entryPoints: [entry],
    absWorkingDir: dirname(entry),
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
