/**
 * `npm install -g .` / `npm link` run the package's install script (scripts/build-native.mjs) again in the checkout.
 * It must keep an addon that is current (built for this Node and CPU, newer than its sources) instead of rebuilding
 * it in place (about a minute, and build/ deleted under any running fedsfda), and must rebuild when a source changed
 * or the recorded target differs. Run on a copy of the script in a fake package (no compiler involved: a build
 * attempt is recognised by its outcome line, which fails there since the fake binding.gyp has no sources).
 */
import { execFile } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHILD_PROCESS_BOUND_MS } from './support/bounds.ts';

const script = fileURLToPath(new URL('../scripts/build-native.mjs', import.meta.url));
let pkg: string;
let native: string;

function buildNative(...args: string[]): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile(process.execPath, [join(pkg, 'scripts', 'build-native.mjs'), ...args], { env: { ...process.env, FEDSFDA_REQUIRE_NATIVE: '', FEDSFDA_REBUILD_NATIVE: '', FEDSFDA_SKIP_NATIVE: '' }, timeout: CHILD_PROCESS_BOUND_MS }, (err, stdout, stderr) =>
      err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(`${stdout}${stderr}`),
    ),
  );
}

const past = new Date(Date.now() - 3_600_000);

/** A built addon whose stamp matches this Node/CPU, sources an hour older than it. */
async function currentBuild(): Promise<void> {
  const addonApi = (JSON.parse(await readFile(join(pkg, 'node_modules', 'node-addon-api', 'package.json'), 'utf8')) as { version: string }).version;
  await mkdir(join(native, 'build', 'Release'), { recursive: true });
  await writeFile(join(native, 'build', 'Release', 'fedsfda_native.node'), 'not really an addon');
  await writeFile(join(native, 'build', 'fedsfda-build-stamp.json'), JSON.stringify({ modules: process.versions.modules, arch: process.arch, cpu: cpus()[0]?.model ?? 'unknown', node: process.versions.node, addonApi }));
  for (const f of [join(native, 'binding.gyp'), join(native, 'src', 'addon.cc')]) await utimes(f, past, past);
}

beforeAll(async () => {
  pkg = await mkdtemp(join(tmpdir(), 'fedsfda-install-'));
  native = join(pkg, 'site-agent', 'engine', 'native');
  await mkdir(join(pkg, 'scripts'), { recursive: true });
  await mkdir(join(native, 'src'), { recursive: true });
  await mkdir(join(pkg, 'node_modules', 'node-addon-api'), { recursive: true });
  await copyFile(script, join(pkg, 'scripts', 'build-native.mjs'));
  await writeFile(join(pkg, 'node_modules', 'node-addon-api', 'package.json'), JSON.stringify({ version: '8.9.2' }));
  await writeFile(join(native, 'binding.gyp'), JSON.stringify({ targets: [] }));
  await writeFile(join(native, 'src', 'addon.cc'), '// fake\n');
});
afterAll(async () => {
  await rm(pkg, { recursive: true, force: true });
});

describe('install script (scripts/build-native.mjs) on a second install', () => {
  it('keeps a current addon without building', async () => {
    await currentBuild();
    expect(await buildNative()).toMatch(/native kernels up to date: .*fedsfda_native\.node/);
  });

  it('builds again when a source is newer than the addon', async () => {
    await currentBuild();
    await utimes(join(native, 'src', 'addon.cc'), new Date(Date.now() + 60_000), new Date(Date.now() + 60_000));
    expect(await buildNative()).not.toContain('up to date');
  });

  it('builds again when the recorded target differs (another Node ABI) or on --force', async () => {
    await currentBuild();
    const stamp = join(native, 'build', 'fedsfda-build-stamp.json');
    await writeFile(stamp, (await readFile(stamp, 'utf8')).replace(`"modules":"${process.versions.modules}"`, '"modules":"1"'));
    expect(await buildNative()).not.toContain('up to date');
    await currentBuild();
    expect(await buildNative('--force')).not.toContain('up to date');
  });
});
