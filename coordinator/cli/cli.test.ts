/** The coordinator command's file loading and config merging, end to end with a real site over socket.io. */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Command } from 'commander';
import { Enrollment } from '../../protocol/enrollment.ts';
import { generateIdentity, loadIdentity, publicKeyToString, saveIdentity } from '../../protocol/identity.ts';
import { encodeWeightSet } from '../../protocol/tensor-codec.ts';
import { runSite } from '../../site-agent/client/run-site.ts';
import { registerCoordinatorCommands } from './cli.ts';
import { startCoordinatorFromFiles } from './start-from-files.ts';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

async function tmp(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'fedsfda-cli-'));
  cleanups.push(() => rm(d, { recursive: true, force: true }));
  return d;
}

describe('coordinator CLI', () => {
  it('runs rounds from identity, enrollment, weights and config files', async () => {
    const dir = await tmp();
    const coordId = generateIdentity();
    const siteId = generateIdentity();
    await saveIdentity(join(dir, 'coord.json'), coordId);
    const enroll = new Enrollment().allow('site-a', siteId.publicKey).toJSON();
    await writeFile(join(dir, 'enroll.json'), JSON.stringify(enroll));
    await writeFile(join(dir, 'w.fsws'), encodeWeightSet([{ name: 'w', shape: [2], data: new Float32Array([1, 1]) }]));
    await writeFile(join(dir, 'cfg.json'), JSON.stringify({ rounds: 5, minSites: 1, strategy: { name: 'fedprox', proximalMu: 0.3, lr: 0.5 } }));
    const lines: string[] = [];
    const handle = await startCoordinatorFromFiles(
      { identity: join(dir, 'coord.json'), enroll: join(dir, 'enroll.json'), initWeights: join(dir, 'w.fsws'), config: join(dir, 'cfg.json'), port: '0', rounds: '2' },
      (l) => lines.push(l),
    );
    cleanups.push(() => handle.close());
    const seen: number[] = [];
    const [res, history] = await Promise.all([
      runSite({
        url: handle.url,
        identity: siteId,
        coordinatorPublicKey: publicKeyToString(coordId.publicKey),
        siteId: 'site-a',
        trainer: {
          fit: async (g, c) => {
            seen.push(c.proximalMu ?? -1);
            return { weights: g.map((t) => ({ ...t, data: t.data.map((x) => x * c.lr) })), numExamples: 2, metrics: { trainLoss: 1 } };
          },
          evaluate: async () => ({ numExamples: 2, metrics: { dice: 0.25 } }),
        },
      }),
      handle.done,
    ]);
    expect(history).toHaveLength(2); // --rounds overrides the config file
    expect(seen).toEqual([0.3, 0.3]);
    expect(res.rounds).toEqual([1, 2]);
    expect(Array.from(handle.weights()[0].data)).toEqual([0.25, 0.25]);
    expect(lines.some((l) => l.startsWith('round 2: aggregated from 1 site(s), mean train loss 1.0000, dice=0.2500'))).toBe(true);
  });

  it('refuses bad config with a typed error naming the field', async () => {
    const dir = await tmp();
    await writeFile(join(dir, 'cfg.json'), JSON.stringify({ rounds: 'three' }));
    await expect(startCoordinatorFromFiles({ identity: 'x', enroll: 'y', initWeights: 'z', config: join(dir, 'cfg.json') })).rejects.toMatchObject({
      code: 'bad_options',
      message: expect.stringContaining('rounds'),
    });
    await expect(startCoordinatorFromFiles({ identity: 'x', enroll: 'y', initWeights: 'z', strategy: 'fedmagic' })).rejects.toMatchObject({ code: 'bad_options' });
  });

  it('takes the per-site byte budget from limits.maxSiteBytesPerRound, overridden by --max-site-bytes-per-round', async () => {
    const dir = await tmp();
    await saveIdentity(join(dir, 'coord.json'), generateIdentity());
    await writeFile(join(dir, 'enroll.json'), JSON.stringify(new Enrollment().allow('site-a', generateIdentity().publicKey).toJSON()));
    await writeFile(join(dir, 'w.fsws'), encodeWeightSet([{ name: 'w', shape: [256], data: new Float32Array(256) }]));
    const files = { identity: join(dir, 'coord.json'), enroll: join(dir, 'enroll.json'), initWeights: join(dir, 'w.fsws'), port: '0', config: join(dir, 'cfg.json') };
    const tooSmall = { code: 'bad_options', message: expect.stringContaining('maxSiteBytesPerRound must be an integer of at least') };
    await writeFile(join(dir, 'cfg.json'), JSON.stringify({ limits: { maxSiteBytesPerRound: 100 } }));
    await expect(startCoordinatorFromFiles(files, () => {})).rejects.toMatchObject(tooSmall);
    await writeFile(join(dir, 'cfg.json'), JSON.stringify({ limits: { maxSiteBytesPerRound: 1 << 20 } }));
    await expect(startCoordinatorFromFiles({ ...files, maxSiteBytesPerRound: '100' }, () => {})).rejects.toMatchObject(tooSmall);
    const handle = await startCoordinatorFromFiles({ ...files, maxSiteBytesPerRound: '4096' }, () => {});
    await handle.close();
  });

  it('identity new writes a loadable identity file', async () => {
    const dir = await tmp();
    const program = new Command().exitOverride();
    registerCoordinatorCommands(program);
    const out: string[] = [];
    const orig = console.log;
    console.log = (s: string) => out.push(s);
    try {
      await program.parseAsync(['node', 'fedsfda', 'identity', 'new', '--out', join(dir, 'id.json')]);
    } finally {
      console.log = orig;
    }
    const id = await loadIdentity(join(dir, 'id.json'));
    expect(out).toEqual([publicKeyToString(id.publicKey)]);
  });
});
