/**
 * The import rules of ARCHITECTURE.md, enforced: dependency-cruiser checks the whole tree against
 * .dependency-cruiser.cjs with no recorded exceptions (the barrel debt the rule came in with is paid). A planted violation in a temporary copy of the config's
 * subjects shows that the check can fail.
 */
import { execFile } from 'node:child_process';
import { cp, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const root = fileURLToPath(new URL('..', import.meta.url));
const depcruise = join(root, 'node_modules', '.bin', 'depcruise');

interface CruiseResult {
  summary: { error: number; violations: { rule: { name: string; severity: string }; from: string; to: string }[] };
}

async function cruise(cwd: string, paths: string[]): Promise<CruiseResult> {
  const args = ['--config', '.dependency-cruiser.cjs', '--output-type', 'json', ...paths];
  // depcruise exits non-zero when it finds errors; the JSON report is on stdout either way.
  const out = await run(depcruise, args, { cwd, maxBuffer: 64 << 20 }).catch((e: { stdout: string }) => e);
  return JSON.parse(out.stdout) as CruiseResult;
}

let scratch: string;
beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'fedsfda-depcruise-'));
});
afterAll(async () => {
  await rm(scratch, { recursive: true, force: true });
});

describe('import rules (dependency-cruiser)', () => {
  it('the tree breaks no rule', async () => {
    const r = await cruise(root, ['protocol', 'coordinator', 'site-agent', 'simulations', 'bin']);
    expect(r.summary.violations.map((v) => `${v.rule.name}: ${v.from} -> ${v.to}`)).toEqual([]);
    expect(r.summary.error).toBe(0);
  });

  it('fails on planted violations (a fixture tree under the same config)', async () => {
    for (const f of ['.dependency-cruiser.cjs', 'tsconfig.json']) await cp(join(root, f), join(scratch, f));
    const files: Record<string, string> = {
      'site-agent/model/index.ts': 'export const createUNet = 1;\n',
      'coordinator/index.ts': 'export const FedAvg = 1;\n',
      'protocol/index.ts': 'export const utf8 = 1;\n',
      'coordinator/planted.ts': "export { createUNet } from '../site-agent/model/index.ts';\n",
      'protocol/planted.ts': "export { FedAvg } from '../coordinator/index.ts';\n",
      'site-agent/data/planted.ts': "export { FedAvg } from '../../coordinator/index.ts';\n",
    };
    for (const [f, text] of Object.entries(files)) {
      await mkdir(join(scratch, f, '..'), { recursive: true });
      await writeFile(join(scratch, f), text);
    }
    const r = await cruise(scratch, ['coordinator', 'protocol', 'site-agent']);
    const names = r.summary.violations.map((v) => `${v.rule.name}: ${v.from}`).sort();
    expect(names).toEqual([
      'coordinator-imports-protocol-only: coordinator/planted.ts',
      'protocol-imports-nothing-of-ours: protocol/planted.ts',
      'site-agent-not-coordinator-or-simulations: site-agent/data/planted.ts',
    ]);
  });
});
