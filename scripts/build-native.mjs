#!/usr/bin/env node
// Builds the fedsfda native kernel addon (site-agent/engine/native) with node-gyp against the local Node
// headers. Run by `npm install` ("install": "node scripts/build-native.mjs"). It must not fail a plain
// install: on any error it prints ONE warning line and exits 0, and the engine falls back to wasm/cpu.
// With FEDSFDA_REQUIRE_NATIVE=1 (CI sets it in .ci/run) a failed build is an error: same line, exit 1.
import { spawnSync, execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const nativeDir = resolve(here, '..', 'site-agent', 'engine', 'native');
const verbose = process.argv.includes('--verbose');
const force = process.argv.includes('--force') || process.env.FEDSFDA_REBUILD_NATIVE === '1';
const addon = join(nativeDir, 'build', 'Release', 'fedsfda_native.node');
const stampFile = join(nativeDir, 'build', 'fedsfda-build-stamp.json');

const required = process.env.FEDSFDA_REQUIRE_NATIVE === '1';

function warn(reason) {
  if (required) {
    console.error(`fedsfda: ERROR native kernels not built (${reason}) and FEDSFDA_REQUIRE_NATIVE=1.`);
    process.exit(1);
  }
  console.warn(`fedsfda: native kernels not built (${reason}); the engine will fall back to the wasm/cpu backends.`);
  process.exit(0);
}

/** node-gyp: npm's configured one, else the copy bundled with npm, else one in node_modules. */
function findNodeGyp() {
  const candidates = [];
  if (process.env.npm_config_node_gyp) candidates.push(process.env.npm_config_node_gyp);
  candidates.push(join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  candidates.push('/usr/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js');
  candidates.push('/usr/share/nodejs/node-gyp/bin/node-gyp.js');
  try {
    const prefix = execFileSync('npm', ['prefix', '-g'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    candidates.push(join(prefix, 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  } catch {
    // npm not on PATH: the other candidates remain.
  }
  candidates.push(resolve(here, '..', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  return candidates.find((c) => existsSync(c));
}

/** What the addon was built for: another Node ABI, architecture or CPU (it is built with -march=native) needs a rebuild. */
function buildTarget() {
  let addonApi = null;
  try {
    addonApi = JSON.parse(readFileSync(resolve(here, '..', 'node_modules', 'node-addon-api', 'package.json'), 'utf8')).version;
  } catch {
    // not installed: node-gyp will say so
  }
  return { modules: process.versions.modules, arch: process.arch, cpu: cpus()[0]?.model ?? 'unknown', node: process.versions.node, addonApi };
}

/**
 * The addon in build/ is current: built by this script for this Node ABI and CPU, and newer than binding.gyp and every
 * source file. Then the install script does nothing. Why: `npm install -g .` and `npm link` link to this folder and
 * run the install script again; a rebuild there takes about a minute and deletes build/ first, so a fedsfda process
 * running from this checkout at that moment fails to load the kernels.
 */
function upToDate() {
  if (!existsSync(addon) || !existsSync(stampFile)) return false;
  try {
    if (JSON.stringify(JSON.parse(readFileSync(stampFile, 'utf8'))) !== JSON.stringify(buildTarget())) return false;
    const srcDir = join(nativeDir, 'src');
    const sources = [join(nativeDir, 'binding.gyp'), ...readdirSync(srcDir).map((f) => join(srcDir, f))];
    const built = statSync(addon).mtimeMs;
    return sources.every((f) => statSync(f).mtimeMs <= built);
  } catch {
    return false;
  }
}

try {
  if (process.env.FEDSFDA_SKIP_NATIVE === '1') warn('FEDSFDA_SKIP_NATIVE=1');
  if (!existsSync(join(nativeDir, 'binding.gyp'))) warn(`no binding.gyp in ${nativeDir}`);
  if (!force && upToDate()) {
    console.log(`fedsfda: native kernels up to date: ${addon} (--force or FEDSFDA_REBUILD_NATIVE=1 rebuilds)`);
    process.exit(0);
  }
  const gyp = findNodeGyp();
  if (!gyp) warn('node-gyp not found (set npm_config_node_gyp)');
  const args = [gyp, 'rebuild', '--release', `--jobs=${Math.max(1, Math.min(2, (await import('node:os')).availableParallelism()))}`];
  // Build against the local headers (npm is configured with nodedir; nothing can be downloaded).
  const nodedir = process.env.npm_config_nodedir ?? (existsSync('/usr/include/node/node_api.h') ? '/usr' : undefined);
  if (nodedir) args.push(`--nodedir=${nodedir}`);
  const res = spawnSync(process.execPath, args, {
    cwd: nativeDir,
    stdio: verbose ? 'inherit' : ['ignore', 'pipe', 'pipe'],
    encoding: 'utf8',
    env: process.env,
  });
  if (res.error) warn(`node-gyp could not start: ${res.error.message}`);
  if (res.status !== 0) {
    const err = `${res.stderr ?? ''}`.split('\n').find((l) => /error/i.test(l)) ?? `exit code ${res.status}`;
    warn(`node-gyp failed: ${err.trim().slice(0, 200)}; rerun with --verbose for details`);
  }
  if (!existsSync(addon)) warn(`build finished but ${addon} is missing`);
  writeFileSync(stampFile, `${JSON.stringify(buildTarget())}\n`);
  console.log(`fedsfda: native kernels built: ${addon}`);
} catch (e) {
  warn(e instanceof Error ? e.message : String(e));
}
