/**
 * Does a dataset built by `fedsfda data build-mricron` train? Loads site-1 with the dataset loader, trains a
 * small U-Net on all but the last case, and reports pooled foreground Dice on the held-out case and on the
 * other sites (other simulated scanners).
 *
 *   npx tsx simulations/mricron/bench-mricron-train.ts --dir /tmp/brains [--steps 300] [--size 64]
 *   (build the folder first: fedsfda data build-mricron --out /tmp/brains --sites 3)
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { loadSiteDataset } from '../../site-agent/data/dataset/index.ts';
import { initEngine } from '../../site-agent/engine/index.ts';
import { createUNet } from '../../site-agent/model/index.ts';
import { evaluateDice } from '../../site-agent/evaluation/index.ts';
import { trainLocal } from '../../site-agent/training/index.ts';
import { selectCases } from '../partition/index.ts';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

const dir = arg('dir', '');
if (dir === '') throw new Error('--dir <folder written by fedsfda data build-mricron> is required');
const steps = Number(arg('steps', '300'));
const size = Number(arg('size', '64'));
const info = await initEngine();
const siteDirs = (await readdir(dir)).filter((d) => d.startsWith('site-')).sort();
const sites = await Promise.all(siteDirs.map((d) => loadSiteDataset(join(dir, d), { size, axis: 2 })));
const first = sites[0].dataset;
const cases = [...new Set(first.caseIds)];
const train = selectCases(first, cases.slice(0, -1));
const held = selectCases(first, cases.slice(-1));
const unet = createUNet({ inChannels: 1, numClasses: first.numClasses, baseChannels: 8, depth: 3 }, 1);
const t0 = performance.now();
const r = await trainLocal(unet, train, { epochs: 1000, maxSteps: steps, batchSize: 8, optimizer: 'adam', lr: 0.005, loss: 'ce+dice', seed: 1 });
const tail = r.lossCurve.slice(-10);
console.log(`backend ${info.backend}; ${siteDirs[0]}: ${train.n} training slices (${cases.length - 1} cases) at ${size}x${size}, ${r.steps} steps, ${((performance.now() - t0) / 1000).toFixed(1)} s, final loss ${(tail.reduce((a, b) => a + b, 0) / tail.length).toFixed(3)}`);
const fmt = (d: { mean: number; perClass: number[] }): string => `${d.mean.toFixed(3)}  (${d.perClass.slice(1).map((x) => x.toFixed(3)).join(' ')})`;
console.log(`${siteDirs[0]} held-out case ${cases[cases.length - 1]}: mean fg Dice ${fmt(evaluateDice(unet, held))}`);
for (let s = 1; s < sites.length; s++) console.log(`${siteDirs[s]} (all cases): mean fg Dice ${fmt(evaluateDice(unet, sites[s].dataset))}`);
unet.dispose();
