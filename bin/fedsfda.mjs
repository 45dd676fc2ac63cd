#!/usr/bin/env node
// Launcher: runs the TypeScript CLI through tsx, so there is no build step and no build output.
import { register } from 'tsx/esm/api';

register();
let cli;
try {
  cli = await import('./cli.ts');
} catch (err) {
  // A dependency added since the last install (e.g. after `git pull`): say what to run instead of a loader stack.
  const pkg = err?.code === 'ERR_MODULE_NOT_FOUND' ? /Cannot find package '([^']+)'/.exec(String(err.message))?.[1] : undefined;
  if (pkg === undefined) throw err;
  const root = new URL('..', import.meta.url).pathname;
  process.stderr.write(`fedsfda: [MISSING_DEPENDENCY] package '${pkg}' is not installed: run \`npm install\` in ${root}\n`);
  process.exit(1);
}
await cli.main(process.argv);
