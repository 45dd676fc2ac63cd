/**
 * Every configuration file the product reads refuses mistakes before anything runs, with file, line, column, JSON
 * path and the closest known key or the allowed values: scenario files (and what they nest), the SFDA benchmark
 * config (and its adaptation options), the coordinator's --config, enrollment/peers files, identity files; and the
 * CLI prints it (exit 1, nothing started).
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCoordinatorFromFiles } from '../coordinator/index.ts';
import { Enrollment } from '../protocol/enrollment.ts';
import { generateIdentity, identityToJson, loadIdentity, publicKeyToString } from '../protocol/identity.ts';
import { SCANNER_PRESET_NAMES } from '../simulations/phantoms/index.ts';
import { loadScenarioFile, parseFederatedScenario, ScenarioError } from '../simulations/scenario.ts';
import { parseSfdaBenchmarkConfig } from '../simulations/sfda/benchmark-config.ts';

const scenarios = fileURLToPath(new URL('../simulations/scenarios/', import.meta.url));
let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fedsfda-config-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Writes `text` as a scenario file and returns the ScenarioError its loading and validation raise. */
async function scenarioError(name: string, text: string): Promise<ScenarioError> {
  const file = join(dir, name);
  await writeFile(file, text);
  try {
    const { raw, text: t } = await loadScenarioFile(file);
    parseFederatedScenario(file, raw, t);
  } catch (e) {
    expect(e).toBeInstanceOf(ScenarioError);
    return e as ScenarioError;
  }
  throw new Error('expected a ScenarioError');
}

async function defaultScenario(): Promise<Record<string, any>> {
  return JSON.parse(await readFile(join(scenarios, 'default.json'), 'utf8')) as Record<string, any>;
}

describe('scenario files are strict', () => {
  it('"secureAgregation" (typo) is refused, naming the key, its path and position, and suggesting secureAggregation', async () => {
    const s = await defaultScenario();
    s.training.secureAgregation = { clip: 8, maxExamples: 1000 };
    const e = await scenarioError('typo.json', JSON.stringify(s, null, 2));
    expect(e.issues).toHaveLength(1);
    expect(e.issues[0]).toMatchObject({ path: ['training', 'secureAgregation'], line: 41, column: 5 });
    expect(e.message).toContain('training.secureAgregation: unknown key (did you mean "secureAggregation"?)');
  });

  it('unknown keys are refused at every level: top, data, sites[i], model, partition, prepare, a shift spec', async () => {
    const s = await defaultScenario();
    s.rounds = 3;
    s.data.numClass = 4;
    s.sites[1].numCase = 3;
    s.model.base = 8;
    s.partition = { kind: 'dirichlet', alpha: 1, poolCases: 30, alhpa: 2 };
    s.prepare = { kind: 'mricron', out: 'x', sites: 3, casesPerSite: 2, scanner: [] };
    s.sites[2].shift = { gamma: 1.2, noize: { sigma: 0.1 } };
    const e = await scenarioError('many.json', JSON.stringify(s, null, 2));
    const messages = e.issues.map((i) => i.message);
    expect(e.message).toMatch(/: rounds: unknown key/);
    expect(e.message).toContain('data.numClass: unknown key (did you mean "numClasses"?)');
    expect(e.message).toContain('sites[1].numCase: unknown key (did you mean "numCases"?)');
    expect(e.message).toContain('partition.alhpa: unknown key (did you mean "alpha"?)');
    expect(e.message).toContain('prepare.scanner: unknown key (did you mean "scanners"?)');
    expect(e.message).toContain('sites[2].shift.noize: unknown key (did you mean "noise"?)');
    expect(e.message).toMatch(/model\.base: unknown key \(did you mean "(baseChannels|depth)"\?|model\.base: unknown key \(known keys: baseChannels, depth, normalization\)/);
    expect(messages.every((m) => m.length > 0)).toBe(true);
    for (const i of e.issues) expect(i.line).toBeGreaterThan(0);
  });

  it('training.augment: accepted with defaults, a misspelt key or an out-of-range value refused at its path', async () => {
    const s = await defaultScenario();
    s.training.augment = { gin: {} };
    const file = join(dir, 'augment.json');
    await writeFile(file, JSON.stringify(s));
    const { raw, text } = await loadScenarioFile(file);
    expect(parseFederatedScenario(file, raw, text).training.augment).toMatchObject({ prob: 0.5, gin: { prob: expect.any(Number) } });
    s.training.augment = { prob: 0.5, gamaMax: 2, noiseMax: 7 };
    const e = await scenarioError('augment-bad.json', JSON.stringify(s, null, 2));
    expect(e.message).toContain('training.augment.gamaMax: unknown key (did you mean "gammaMax"?)');
    expect(e.message).toMatch(/training\.augment\.noiseMax/);
  });

  it('an unknown shift preset lists the presets and suggests the closest', async () => {
    const s = await defaultScenario();
    s.sites[0].shift = 'scaner-a';
    const e = await scenarioError('preset.json', JSON.stringify(s, null, 2));
    expect(e.message).toContain(`sites[0].shift: "scaner-a" is not one of: ${SCANNER_PRESET_NAMES.join(', ')} (did you mean "scanner-a"?)`);
  });

  it('enum fields list their values (optimizer, strategy, partition kind)', async () => {
    const s = await defaultScenario();
    s.training.optimizer = 'adamw';
    s.training.strategy = 'fedavgg';
    s.partition = { kind: 'dirichet', alpha: 1, poolCases: 30 };
    const e = await scenarioError('enum.json', JSON.stringify(s, null, 2));
    expect(e.message).toContain('training.optimizer: "adamw" is not one of: sgd, adam (did you mean "adam"?)');
    expect(e.message).toContain('training.strategy: "fedavgg" is not one of: fedavg, fedprox, fedbn, fedadam, fedyogi, fedadagrad (did you mean "fedavg"?)');
    expect(e.message).toContain('partition.kind: kind must be one of: dirichlet, quantity');
  });

  it('invalid JSON is reported with line and column', async () => {
    const e = await scenarioError('syntax.json', '{\n  "kind": "federated",\n  "name": "x",\n}\n');
    expect(e.message).toContain('syntax.json:4:1: (root): invalid JSON: expected a property name in double quotes (a trailing comma?)');
  });

  it('every shipped scenario is valid under the strict schemas', async () => {
    for (const name of ['default', 'mricron', 'noniid-fedbn', 'noniid-labelskew', 'secure']) {
      const file = join(scenarios, `${name}.json`);
      const { raw, text } = await loadScenarioFile(file);
      expect(() => parseFederatedScenario(file, raw, text)).not.toThrow();
    }
    for (const name of ['sfda-benchmark', 'sfda-benchmark-polarity', 'sfda-mricron', 'sfda-mricron-no-polarity']) {
      const file = join(scenarios, `${name}.json`);
      const text = await readFile(file, 'utf8');
      expect(() => parseSfdaBenchmarkConfig(JSON.parse(text), file, text)).not.toThrow();
    }
  });
});

describe('SFDA benchmark configs are strict, down to the adaptation options', () => {
  it('a mistyped adaptation option names the closest one', async () => {
    const file = join(scenarios, 'sfda-benchmark.json');
    const raw = JSON.parse(await readFile(file, 'utf8')) as Record<string, any>;
    raw.adapt.methods.tent = { epochs: 4, lrr: 0.003 };
    raw.adapt.common = { inputPolarity: [1, -1] };
    const text = JSON.stringify(raw, null, 2);
    expect(() => parseSfdaBenchmarkConfig(raw, 'bench.json', text)).toThrow(/adapt\.methods\.tent\.lrr: unknown key \(did you mean "lr"\?\)/);
    expect(() => parseSfdaBenchmarkConfig(raw, 'bench.json', text)).toThrow(/adapt\.common\.inputPolarity: unknown key \(did you mean "inputPolarities"\?\)/);
  });
});

describe('coordinator --config, enrollment/peers and identity files are strict', () => {
  it('coordinator --config: unknown key with suggestion, line and column', async () => {
    const cfg = join(dir, 'coordinator.json');
    await writeFile(cfg, '{\n  "rounds": 2,\n  "secureAgregation": {"clip": 8, "maxExamples": 10}\n}\n');
    const id = join(dir, 'coord-id.json');
    await writeFile(id, identityToJson(generateIdentity()));
    await expect(startCoordinatorFromFiles({ identity: id, enroll: join(dir, 'none.json'), initWeights: join(dir, 'none.fsws'), config: cfg }, () => {})).rejects.toThrow(
      `--config ${cfg}:3:3: secureAgregation: unknown key (did you mean "secureAggregation"?)`,
    );
  });

  it('enrollment and peers files: unknown keys and JSON errors located', async () => {
    const key = publicKeyToString(generateIdentity().publicKey);
    const f = join(dir, 'enroll.json');
    await writeFile(f, JSON.stringify({ v: 1, site: { 'site-a': key } }, null, 2));
    await expect(Enrollment.load(f)).rejects.toThrow(`${f}:3:3: site: unknown key (did you mean "sites"?)`);
    await writeFile(f, `{"v": 1, "sites": {"site-a": "${key}"}, "tokens": [{"token": "0123456789abcdef0123", "site": "site-b"}]}`);
    await expect(Enrollment.load(f)).rejects.toThrow(/tokens\[0\]\.site: unknown key \(did you mean "siteId"\?\)/);
    await writeFile(f, '{"v": 1, "sites": {"site-a": "k",}}');
    await expect(Enrollment.load(f)).rejects.toThrow(`${f}:1:34: (root): invalid JSON`);
  });

  it('identity files: errors name the position and key, never the secret', async () => {
    const f = join(dir, 'id.json');
    const good = JSON.parse(identityToJson(generateIdentity())) as Record<string, unknown>;
    await writeFile(f, JSON.stringify({ ...good, secret: 'x' }, null, 2));
    const err = await loadIdentity(f).then(
      () => null,
      (e: Error) => e,
    );
    expect(err?.message).toContain(`${f}:6:3: secret: unknown key (did you mean "secretKey"?)`);
    expect(err?.message).not.toContain(String(good.secretKey));
  });
});

describe('the CLI refuses a bad scenario before starting anything', () => {
  it('fedsfda simulate --config typo.json exits 1 with the located error and writes no run folder', async () => {
    const s = await defaultScenario();
    s.training.secureAgregation = { clip: 8, maxExamples: 1000 };
    const file = join(dir, 'cli-typo.json');
    await writeFile(file, JSON.stringify(s, null, 2));
    const cli = fileURLToPath(new URL('../bin/fedsfda.mjs', import.meta.url));
    const r = await new Promise<{ code: number; stderr: string }>((resolve) => {
      execFile(process.execPath, [cli, 'simulate', '--config', file, '--out', join(dir, 'run')], { cwd: dir }, (err, _out, stderr) =>
        resolve({ code: err ? Number(err.code ?? 1) : 0, stderr }),
      );
    });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`${file}:41:5: training.secureAgregation: unknown key (did you mean "secureAggregation"?)`);
    await expect(readFile(join(dir, 'run', 'summary.json'))).rejects.toThrow();
  });
});
