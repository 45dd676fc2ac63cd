/**
 * A child's failure in `fedsfda simulate` is logged once, with its own typed code: a site whose dataset folder is
 * empty fails with NOT_A_DATASET, and the command's stderr holds exactly one log line for it (timestamp, level,
 * code), then the plain-text line for a human (stderr is not a terminal here), and exits 1. Before: the runner logged
 * it (code CHILD_FAILED) and the CLI logged it again (code child-failed), with the child's code only inside the text.
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHILD_PROCESS_BOUND_MS, STAGE_BOUND_MS } from './support/bounds.ts';

const cli = fileURLToPath(new URL('../bin/fedsfda.mjs', import.meta.url));
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fedsfda-faillog-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('fedsfda simulate: a failed child', () => {
  it('is logged once, with the code the child reported, and the command exits 1', async () => {
    await mkdir(join(dir, 'empty'));
    const scenario = {
      kind: 'federated',
      name: 'test: a site without data',
      seed: 1,
      data: { size: 16, numClasses: 3, slicesPerCase: 2, valFraction: 0.34 },
      sites: [
        { id: 'site-x', shift: 'scanner-a', numCases: 3 },
        { id: 'site-bad', dataDir: 'empty' },
      ],
      model: { baseChannels: 2, depth: 1 },
      training: { rounds: 1, localEpochs: 1, batchSize: 2, lr: 0.01, optimizer: 'adam', loss: 'ce+dice', strategy: 'fedavg', stageTimeoutMs: STAGE_BOUND_MS },
    };
    await writeFile(join(dir, 'bad.json'), JSON.stringify(scenario));
    const r = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
      execFile(process.execPath, [cli, 'simulate', '--config', 'bad.json', '--out', 'out'], { cwd: dir, env: { ...process.env, NO_COLOR: '1' }, timeout: CHILD_PROCESS_BOUND_MS }, (err, stdout, stderr) =>
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr }),
      ),
    );
    expect(r.code, r.stderr).toBe(1);
    const lines = r.stderr.trim().split('\n');
    const logs = lines.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { level: number; time: string; code: string; msg: string });
    const errors = logs.filter((l) => l.level >= 50);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ code: 'NOT_A_DATASET', time: expect.stringMatching(/^\d{4}-\d\d-\d\dT/) });
    expect(errors[0].msg).toMatch(/^site-bad failed: .*empty: no dataset\.json/);
    expect(errors[0].msg).not.toContain('[NOT_A_DATASET]');
    // The plain line after it, once; nothing else mentions the failure (stdout included).
    expect(lines.filter((l) => l.startsWith('fedsfda: [NOT_A_DATASET] site-bad failed: '))).toHaveLength(1);
    expect(`${r.stdout}\n${r.stderr}`.match(/no dataset\.json/g)).toHaveLength(2);
  });
});
