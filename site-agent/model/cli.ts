/**
 * `fedsfda model init` (a seeded, untrained U-Net saved to a directory: the round-0 global model) and
 * `fedsfda model info` (what a saved model is, without loading tfjs weights) and `fedsfda model profile`
 * (time trainLocal steps on the selected backend and list the tfjs kernels a step hits).
 */
import { writeFile } from 'node:fs/promises';
import { encodeWeightSet } from '../../protocol/index.ts';
import { Option, type Command } from 'commander';
import { initEngine } from '../engine/index.ts';
import { profileTrainStep } from '../training/index.ts';
import { ModelError } from './model-error.ts';
import { readModelManifest, saveModel } from './model-io.ts';
import { createUNet } from './unet.ts';
import { parseUNetConfig } from './unet-config.ts';

function intArg(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n)) throw new ModelError('INVALID_CONFIG', `--${name} must be an integer, got "${v}"`);
    return n;
  };
}

export function registerModelCommands(program: Command): void {
  const model = program.command('model').description('create and inspect U-Net model directories (model.json + weights.bin)');
  model
    .command('init')
    .description('write a seeded, untrained U-Net (He initialisation) to a directory')
    .requiredOption('--out <dir>', 'output directory')
    .option('--in-channels <n>', 'input channels', intArg('in-channels'), 1)
    .option('--classes <n>', 'number of classes incl. background', intArg('classes'), 4)
    .option('--base <n>', 'channels at the first level', intArg('base'), 16)
    .option('--depth <n>', 'number of 2x2 poolings', intArg('depth'), 2)
    .option('--seed <n>', 'initialisation seed', intArg('seed'), 0)
    .addOption(new Option('--normalization <kind>', "'group': GroupNorm instead of batch norm (needed by sites that train with DP-SGD)").choices(['batch', 'group']).default('batch'))
    .option('--backend <name>', 'force a backend (also FEDSFDA_BACKEND)')
    .option('--wire-out <file>', "also write the weights as an encoded WeightSet (the coordinator's --init-weights)")
    .action(async (o: { out: string; inChannels: number; classes: number; base: number; depth: number; seed: number; normalization: 'batch' | 'group'; backend?: string; wireOut?: string }) => {
      const config = parseUNetConfig({ inChannels: o.inChannels, numClasses: o.classes, baseChannels: o.base, depth: o.depth, ...(o.normalization === 'group' ? { normalization: 'group' } : {}) });
      await initEngine(o.backend !== undefined ? { backend: o.backend } : {});
      const unet = createUNet(config, o.seed);
      try {
        await saveModel(unet, o.out);
        process.stdout.write(`wrote ${o.out}: ${unet.numParams} trainable parameters, ${o.normalization === 'group' ? 'group norm' : `${unet.bnLayers.length} BN layers`}\n`);
        if (o.wireOut !== undefined) {
          await writeFile(o.wireOut, encodeWeightSet(unet.getWeights()));
          process.stdout.write(`wrote ${o.wireOut} (encoded WeightSet for fedsfda coordinator --init-weights)\n`);
        }
      } finally {
        unet.dispose();
      }
    });
  model
    .command('info <dir>')
    .description('print the config and tensor list of a saved model')
    .option('--json', 'print the manifest as JSON')
    .action(async (dir: string, o: { json?: boolean }) => {
      const m = await readModelManifest(dir);
      if (o.json) {
        process.stdout.write(JSON.stringify(m) + '\n');
        return;
      }
      const count = m.tensors.reduce((s, t) => s + t.byteLength / 4, 0);
      const lines = [
        `format:  ${m.format} v${m.version}`,
        `config:  ${JSON.stringify(m.config)}`,
        `tensors: ${m.tensors.length} (${count} values, ${m.byteLength} bytes, sha256 ${m.sha256.slice(0, 16)}...)`,
        ...m.tensors.map((t) => `  ${t.name.padEnd(24)} [${t.shape.join(', ')}]`),
      ];
      process.stdout.write(lines.join('\n') + '\n');
    });
  model
    .command('profile')
    .description('time training steps of a U-Net on the selected backend and list the kernels one step runs')
    .option('--size <n>', 'image height and width', intArg('size'), 16)
    .option('--batch <n>', 'batch size', intArg('batch'), 2)
    .option('--in-channels <n>', 'input channels', intArg('in-channels'), 1)
    .option('--classes <n>', 'number of classes', intArg('classes'), 2)
    .option('--base <n>', 'channels at the first level', intArg('base'), 4)
    .option('--depth <n>', 'number of 2x2 poolings', intArg('depth'), 2)
    .option('--warmup <n>', 'untimed steps first', intArg('warmup'), 1)
    .option('--steps <n>', 'timed steps', intArg('steps'), 5)
    .option('--backend <name>', 'force a backend (also FEDSFDA_BACKEND)')
    .option('--json', 'print one JSON line')
    .action(
      async (o: {
        size: number;
        batch: number;
        inChannels: number;
        classes: number;
        base: number;
        depth: number;
        warmup: number;
        steps: number;
        backend?: string;
        json?: boolean;
      }) => {
        const config = parseUNetConfig({ inChannels: o.inChannels, numClasses: o.classes, baseChannels: o.base, depth: o.depth });
        await initEngine(o.backend !== undefined ? { backend: o.backend } : {});
        const r = await profileTrainStep({ config, size: o.size, batch: o.batch, warmup: o.warmup, steps: o.steps });
        if (o.json) {
          process.stdout.write(JSON.stringify(r) + '\n');
          return;
        }
        const lines = [
          `backend ${r.backend}, ${o.size}x${o.size}, batch ${o.batch}, ${JSON.stringify(r.config)}`,
          `ms/step: median ${r.msPerStepMedian.toFixed(1)} (${r.msPerStep.map((t) => t.toFixed(0)).join(', ')})`,
          'kernels of one step (calls, summed ms):',
          ...r.kernels.map((k) => `  ${k.name.padEnd(24)} ${String(k.calls).padStart(5)} ${k.ms.toFixed(1).padStart(9)}`),
        ];
        process.stdout.write(lines.join('\n') + '\n');
      },
    );
}
