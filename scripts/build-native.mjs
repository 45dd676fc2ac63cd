#!/usr/bin/env node
// Builds the fedsfda native kernel addon (site-agent/engine/native) with node-gyp against the local Node
// headers. Run by `npm install` ("install": "node scripts/build-native.mjs"). It must not fail a plain
// install: on any error it prints ONE warning line and exits 0, and the engine falls back to wasm/cpu.
// With FEDSFDA_REQUIRE_NATIVE=1 (CI sets it in .ci/run) a failed build is an error: same line, exit 1.
import { spawnSync, execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const nativeDir = resolve(here, '..', 'site-agent', 'engine', 'native');
const verbose = process.argv.includes('--verbose');

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

try {
  if (process.env.FEDSFDA_SKIP_NATIVE === '1') warn('FEDSFDA_SKIP_NATIVE=1');
  if (!existsSync(join(nativeDir, 'binding.gyp'))) warn(`no binding.gyp in ${nativeDir}`);
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
  const out = join(nativeDir, 'build', 'Release', 'fedsfda_native.node');
  if (!existsSync(out)) warn(`build finished but ${out} is missing`);
  console.log(`fedsfda: native kernels built: ${out}`);
} catch (e) {
  warn(e instanceof Error ? e.message : String(e));
}
