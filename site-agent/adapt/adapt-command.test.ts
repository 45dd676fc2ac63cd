import '@tensorflow/tfjs-core/dist/register_all_gradients';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initEngine } from '../engine/index.ts';
import { createUNet, saveModel } from '../model/index.ts';
import { registerAdaptCommands } from './adapt-command.ts';

let dir: string;

beforeAll(async () => {
  await initEngine();
  dir = await mkdtemp(join(tmpdir(), 'fedsfda-adapt-cli-'));
  const unet = createUNet({ inChannels: 1, numClasses: 3, baseChannels: 4, depth: 1, inputSize: [16, 16] }, 1);
  await saveModel(unet, join(dir, 'model'));
  unet.dispose();
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function program(): Command {
  const p = new Command().exitOverride();
  registerAdaptCommands(p);
  return p;
}

describe('fedsfda source-stats / adapt (phantom target)', () => {
  it('writes a stats package, then an adapted model, predictions and a before/after report', async () => {
    const phantom = ['--phantom-cases', '1', '--slices-per-case', '2'];
    await program().parseAsync(['node', 'x', 'source-stats', '--model', join(dir, 'model'), '--phantom-preset', 'scanner-a', ...phantom, '--out', join(dir, 's.json')]);
    await program().parseAsync([
      'node', 'x', 'adapt', '--model', join(dir, 'model'), '--source-stats', join(dir, 's.json'), '--method', 'adabn',
      '--phantom-preset', 'mr-to-ct', ...phantom, '--evaluate', '--out', join(dir, 'out'),
    ]);
    expect((await stat(join(dir, 'out', 'model', 'model.json'))).isFile()).toBe(true);
    expect((await stat(join(dir, 'out', 'predictions', 'labels.u8'))).size).toBe(2 * 16 * 16);
    const report = JSON.parse(await readFile(join(dir, 'out', 'adapt-report.json'), 'utf8'));
    expect(report.method).toBe('adabn');
    expect(report.before.summary.numCases).toBe(1);
    expect(report.after.summary.numCases).toBe(1);
    await program().parseAsync([
      'node', 'x', 'adapt', '--model', join(dir, 'model'), '--source-stats', join(dir, 's.json'), '--method', 'adabn',
      '--phantom-preset', 'mr-to-ct', ...phantom, '--polarity-check', '--out', join(dir, 'out-p'),
    ]);
    const checked = JSON.parse(await readFile(join(dir, 'out-p', 'adapt-report.json'), 'utf8'));
    expect(checked.report.notes[0]).toMatch(/^input polarity [+-]1 \(input adapter \(K=2, 0 steps\): kept start [01] \((identity|negation)\); entropy after AdaBN per start \[identity [\d.]+, negation [\d.]+\]\)$/);
  });

  it('refuses an unknown method with a typed error', async () => {
    await expect(
      program().parseAsync(['node', 'x', 'adapt', '--model', join(dir, 'model'), '--source-stats', join(dir, 's.json'), '--method', 'magic', '--phantom-preset', 'mr-to-ct', '--out', join(dir, 'o2')]),
    ).rejects.toMatchObject({ code: 'UNKNOWN_METHOD' });
  });
});
