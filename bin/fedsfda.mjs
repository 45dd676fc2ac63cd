#!/usr/bin/env node
// Launcher: runs the TypeScript CLI through tsx, so there is no build step and no build output.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('./cli.ts');
await main(process.argv);
