import { Command } from 'commander';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { registerModelCommands } from './cli.ts';
import { loadModel } from './model-io.ts';
import { ModelError } from './model-error.ts';

let dir: string;
let out: string[];

async function run(...args: string[]): Promise<void> {
  const program = new Command().exitOverride();
  registerModelCommands(program);
  await program.parseAsync(['node', 'fedsfda', ...args]);
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fedsfda-model-cli-'));
  out = [];
  vi.spyOn(process.stdout, 'write').mockImplementation((s: string | Uint8Array) => {
    out.push(String(s));
    return true;
  });
});
afterEach(async () => {
  vi.restoreAllMocks();
  await rm(dir, { recursive: true, force: true });
});

describe('fedsfda model', () => {
  it('init writes a loadable seeded model and info describes it', async () => {
    const m = join(dir, 'm');
    await run('model', 'init', '--out', m, '--classes', '3', '--base', '2', '--depth', '1', '--seed', '4', '--backend', 'cpu');
    expect(out.join('')).toMatch(/trainable parameters, 6 BN layers/);
    const unet = await loadModel(m);
    expect(unet.config).toEqual({ inChannels: 1, numClasses: 3, baseChannels: 2, depth: 1 });
    unet.dispose();
    out = [];
    await run('model', 'info', m, '--json');
    const manifest = JSON.parse(out.join('')) as { tensors: { name: string }[] };
    expect(manifest.tensors[0].name).toBe('enc1.conv1.w');
    out = [];
    await run('model', 'info', m);
    expect(out.join('')).toMatch(/head\.w\s+\[1, 1, 2, 3\]/);
  });

  it('refuses a bad config and a missing model with typed errors', async () => {
    await expect(run('model', 'init', '--out', join(dir, 'x'), '--depth', '0', '--backend', 'cpu')).rejects.toThrow(ModelError);
    await expect(run('model', 'info', join(dir, 'nothing'))).rejects.toMatchObject({ code: 'MODEL_FILE_MISSING' });
  });
});
