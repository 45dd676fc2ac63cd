/**
 * Command-line options of the benchmark and reliability scripts: node's `parseArgs` (strict), with a bad or unknown
 * option or a non-numeric count logged once (timestamp, level, typed code `bad_option`) and exit code 2 instead of a
 * stack trace.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { getLogger } from '../protocol/common/index.ts';

type OptionSpec = NonNullable<ParseArgsConfig['options']>;

/** Exits 2 after one `error` line with code `bad_option` naming the script and what is wrong. */
export function badOption(script: string, message: string, usage?: string): never {
  getLogger().error({ code: 'bad_option', script }, usage ? `${message}; usage: ${usage}` : message);
  process.exit(2);
}

/** The parsed option values; an unknown option, a missing value or a positional argument is `bad_option`. */
export function scriptOptions<const O extends OptionSpec>(script: string, options: O, usage: string, argv: string[] = process.argv.slice(2)) {
  try {
    return parseArgs({ args: argv, options, strict: true, allowPositionals: false }).values;
  } catch (e) {
    return badOption(script, (e as Error).message, usage);
  }
}

/** A whole number >= `min` from an option value (a count, a seed, milliseconds); anything else is `bad_option`. */
export function intOption(script: string, name: string, raw: string, min = 0): number {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) badOption(script, `--${name} must be a whole number >= ${min}, got ${JSON.stringify(raw)}`);
  return n;
}
