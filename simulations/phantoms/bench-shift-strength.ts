/**
 * How strong are the scanner shifts? Trains a small U-Net on one phantom scanner and reports the pooled
 * foreground Dice on held-out phantoms (different seed) seen through every preset.
 *
 *   npx tsx simulations/phantoms/bench-shift-strength.ts [--steps 300] [--train scanner-a] [--size 32]
 *
 * A model trained on `scanner-a` should be good in-domain and degrade on the shifted presets, most on
 * `mr-to-ct`; trained on `mr-to-ct` itself it should be good again (the shift is learnable).
 */
import { initEngine } from '../../site-agent/engine/index.ts';
import { createUNet } from '../../site-agent/model/index.ts';
import { evaluateDice } from '../../site-agent/evaluation/index.ts';
import { trainLocal } from '../../site-agent/training/index.ts';
import { generateSiteData } from './generate-site-data.ts';
import { resolveScannerShift, SCANNER_PRESET_NAMES, type ScannerPresetName } from './scanner-shift.ts';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

const steps = Number(arg('steps', '300'));
const size = Number(arg('size', '32'));
const trainOn = arg('train', 'scanner-a') as ScannerPresetName;
resolveScannerShift(trainOn);
const K = 4;
const info = await initEngine();
const train = generateSiteData({ seed: 1, numCases: 16, slicesPerCase: 5, size, numClasses: K, shift: trainOn });
const unet = createUNet({ inChannels: 1, numClasses: K, baseChannels: 8, depth: 2 }, 1);
const t0 = performance.now();
const r = await trainLocal(unet, train, { epochs: 1000, maxSteps: steps, batchSize: 8, optimizer: 'adam', lr: 0.01, loss: 'ce+dice', seed: 1 });
const tail = r.lossCurve.slice(-10);
console.log(`backend ${info.backend}; trained on ${trainOn}: ${r.steps} steps, ${((performance.now() - t0) / 1000).toFixed(1)} s, final loss ${(tail.reduce((a, b) => a + b, 0) / tail.length).toFixed(3)}`);
console.log('test scanner   mean fg Dice   per class (1 wall, 2 cavity, 3 neighbour)');
for (const s of SCANNER_PRESET_NAMES) {
  const test = generateSiteData({ seed: 2, numCases: 6, slicesPerCase: 5, size, numClasses: K, shift: s });
  const d = evaluateDice(unet, test);
  console.log(`${s.padEnd(14)} ${d.mean.toFixed(3).padStart(13)}   ${d.perClass.slice(1).map((x) => x.toFixed(3)).join(' ')}`);
}
unet.dispose();
