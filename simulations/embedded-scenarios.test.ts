import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { EMBEDDED_SCENARIO_DIR, embeddedScenarioNames, resolveScenarioArg } from './embedded-scenarios.ts';

describe('embedded scenarios by name', () => {
  it('lists the shipped scenarios', () => {
    expect(embeddedScenarioNames()).toEqual(expect.arrayContaining(['default', 'mricron', 'secure', 'sfda-benchmark']));
  });

  it('a bare name, with or without .json, is the embedded file when no such file exists here', () => {
    const none = (): boolean => false;
    const onlyEmbedded = (p: string): boolean => p.startsWith(EMBEDDED_SCENARIO_DIR);
    expect(resolveScenarioArg('mricron.json', onlyEmbedded)).toBe(join(EMBEDDED_SCENARIO_DIR, 'mricron.json'));
    expect(resolveScenarioArg('mricron', onlyEmbedded)).toBe(join(EMBEDDED_SCENARIO_DIR, 'mricron.json'));
    expect(resolveScenarioArg('simulations/scenarios/mricron.json', onlyEmbedded)).toBe(join(EMBEDDED_SCENARIO_DIR, 'mricron.json'));
    expect(resolveScenarioArg('nope.json', none)).toBe('nope.json');
  });

  it('an existing file is taken as given; so is any other folder path', () => {
    expect(resolveScenarioArg('mricron.json', () => true)).toBe('mricron.json');
    expect(resolveScenarioArg('simulations/scenarios/mricron.json', () => true)).toBe('simulations/scenarios/mricron.json');
    expect(resolveScenarioArg('my/mricron.json', () => false)).toBe('my/mricron.json');
    expect(resolveScenarioArg('/abs/mricron.json', () => false)).toBe('/abs/mricron.json');
  });

  it('a folder of that name (e.g. the run folder of an earlier --out default) does not shadow the embedded file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fedsfda-embedded-'));
    const cwd = process.cwd();
    try {
      await mkdir(join(dir, 'default'));
      process.chdir(dir);
      expect(resolveScenarioArg('default')).toBe(join(EMBEDDED_SCENARIO_DIR, 'default.json'));
    } finally {
      process.chdir(cwd);
      await rm(dir, { recursive: true, force: true });
    }
  });
});
