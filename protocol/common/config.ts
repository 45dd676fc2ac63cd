/**
 * Strict configuration files: every JSON file a person writes for fedsfda (scenarios, the coordinator's `--config`,
 * enrollment and peers files, benchmark configs) is read through here, so that every mistake is refused before
 * anything runs, with the file, line and column, the JSON path, and what would have been right:
 *
 *   scenario.json:14:7: training.secureAgregation: unknown key (did you mean "secureAggregation"?)
 *   scenario.json:9:16: sites[1].shift: "mr-to-cx" is not one of: none, mr-to-ct, ... (did you mean "mr-to-ct"?)
 *   scenario.json:3:1: invalid JSON: expected a property name (trailing comma?)
 *
 * Schemas are zod objects declared `.strict()` (unknown keys are errors, never silently dropped: a typo such as
 * `secureAgregation` would otherwise run a federation without secure aggregation).
 */
import { readFile } from 'node:fs/promises';
import { closest, distance } from 'fastest-levenshtein';
import * as jsonc from 'jsonc-parser';
import type { z } from 'zod';

export type ConfigPath = readonly (string | number)[];

export interface ConfigIssue {
  /** JSON path of the offending value (for an unknown key: the key itself). */
  readonly path: ConfigPath;
  readonly message: string;
  /** 1-based position in the file, when the text is known. */
  readonly line?: number;
  readonly column?: number;
}

/** A configuration file that cannot be used; `issues` lists every problem found (not only the first). */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly code = 'BAD_CONFIG' as const;
  constructor(
    readonly source: string,
    readonly issues: readonly ConfigIssue[],
  ) {
    super(issues.map((i) => formatIssue(source, i)).join('\n'));
  }
}

/** `a.b[2].c` (the root is `(root)`). */
export function formatPath(path: ConfigPath): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : out === '' ? p : `.${p}`;
  return out === '' ? '(root)' : out;
}

function formatIssue(source: string, i: ConfigIssue): string {
  const where = i.line !== undefined ? `${source}:${i.line}:${i.column ?? 1}` : source;
  return `${where}: ${formatPath(i.path)}: ${i.message}`;
}

/** The closest of `known` to `word`, when close enough to be a plausible typo (Levenshtein, scaled by length). */
export function suggestClosest(word: string, known: readonly string[]): string | undefined {
  if (known.length === 0) return undefined;
  const best = closest(word, known);
  const d = distance(word.toLowerCase(), best.toLowerCase());
  return d <= Math.max(2, Math.floor(best.length / 3)) ? best : undefined;
}

const didYouMean = (word: string, known: readonly string[]): string => {
  const s = suggestClosest(word, known);
  return s === undefined ? '' : ` (did you mean ${JSON.stringify(s)}?)`;
};

function lineColumn(text: string, offset: number): { line: number; column: number } {
  let line = 1;
  let lineStart = 0;
  for (let i = 0; i < offset && i < text.length; i++) {
    if (text.charCodeAt(i) === 10) {
      line++;
      lineStart = i + 1;
    }
  }
  return { line, column: offset - lineStart + 1 };
}

const JSON_ERRORS: Record<string, string> = {
  InvalidSymbol: 'unexpected character (strings and keys need double quotes)',
  InvalidNumberFormat: 'invalid number',
  PropertyNameExpected: 'expected a property name in double quotes (a trailing comma?)',
  ValueExpected: 'expected a value (a trailing comma, or a missing value?)',
  ColonExpected: "expected ':' after the property name",
  CommaExpected: "expected ',' between entries",
  CloseBraceExpected: "expected '}' (an unclosed object?)",
  CloseBracketExpected: "expected ']' (an unclosed array?)",
  EndOfFileExpected: 'unexpected content after the end of the JSON value',
  InvalidCommentToken: 'comments are not allowed in JSON',
  UnexpectedEndOfComment: 'comments are not allowed in JSON',
  UnexpectedEndOfString: 'unterminated string',
  UnexpectedEndOfNumber: 'unterminated number',
  InvalidUnicode: 'invalid unicode escape',
  InvalidEscapeCharacter: 'invalid escape character',
  InvalidCharacter: 'invalid character in a string (control characters must be escaped)',
};

/** `JSON.parse` with the line and column of the first syntax error (and what was expected there). */
export function parseJsonText(text: string, source: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    // Locate the error: V8's messages give a character offset at best, and for some errors nothing.
  }
  const errors: jsonc.ParseError[] = [];
  jsonc.parse(text, errors, { disallowComments: true, allowTrailingComma: false, allowEmptyContent: false });
  const first = errors[0];
  const offset = first?.offset ?? text.length;
  const { line, column } = lineColumn(text, offset);
  const what = first ? (JSON_ERRORS[jsonc.printParseErrorCode(first.error)] ?? 'invalid JSON') : text.trim() === '' ? 'the file is empty' : 'invalid JSON';
  throw new ConfigError(source, [{ path: [], message: `invalid JSON: ${what}`, line, column }]);
}

/** Reads a JSON file; a missing or unreadable file is a ConfigError too. */
export async function readJsonFile(file: string): Promise<{ raw: unknown; text: string }> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new ConfigError(file, [{ path: [], message: `cannot read: ${(e as Error).message}` }]);
  }
  return { raw: parseJsonText(text, file), text };
}

interface ShapeSchema {
  _zod?: { def?: { shape?: Record<string, unknown>; type?: string } };
}

/**
 * zod error map: enum values list the allowed values and the closest one; for unknown keys it records the object's
 * known keys (by input object) so that each unknown key can name the closest one. Schema-level messages (e.g. a
 * regex's explanation) take precedence over this map.
 */
function configErrorMap(knownKeys: Map<unknown, string[]>): (iss: z.core.$ZodRawIssue) => string | undefined {
  return (iss) => {
    switch (iss.code) {
      case 'unrecognized_keys': {
        const shape = (iss.inst as ShapeSchema | undefined)?._zod?.def?.shape;
        knownKeys.set(iss.input, shape ? Object.keys(shape) : []);
        return 'unknown key';
      }
      case 'invalid_type':
        return iss.input === undefined ? `missing (expected ${String(iss.expected)})` : undefined;
      case 'invalid_value': {
        const values = (iss.values as unknown[]).map((v) => String(v));
        if (iss.input === undefined) return `missing (expected ${values.length === 1 ? values[0] : `one of: ${values.join(', ')}`})`;
        const hint = typeof iss.input === 'string' ? didYouMean(iss.input, values) : '';
        return `${JSON.stringify(iss.input)} is not one of: ${values.join(', ')}${hint}`;
      }
      default:
        return undefined;
    }
  };
}

type ZodIssue = z.core.$ZodIssue;

/** Depth of the deepest issue in a union branch: the branch that got furthest is the one the author meant. */
function branchScore(issues: readonly ZodIssue[]): number {
  let best = -1;
  for (const i of issues) best = Math.max(best, i.path.length * 2 + (i.code === 'invalid_type' ? 0 : 1));
  return best;
}

function toIssues(issue: ZodIssue, prefix: ConfigPath, knownKeys: Map<unknown, string[]>): ConfigIssue[] {
  const path = [...prefix, ...(issue.path as (string | number)[])];
  switch (issue.code) {
    case 'unrecognized_keys': {
      const known = knownKeys.get(issue.input) ?? [];
      return issue.keys.map((k) => {
        const close = suggestClosest(k, known);
        const hint = close !== undefined ? ` (did you mean ${JSON.stringify(close)}?)` : known.length > 0 ? ` (known keys: ${known.join(', ')})` : '';
        return { path: [...path, k], message: `unknown key${hint}` };
      });
    }
    case 'invalid_union': {
      if (issue.errors.length === 0) {
        // A discriminated union whose discriminator matched no option.
        const u = issue as ZodIssue & { discriminator?: string; options?: unknown[] };
        const options = (u.options ?? []).map(String);
        return [{ path, message: `${u.discriminator ?? 'discriminator'} must be one of: ${options.join(', ')}` }];
      }
      const branches = [...issue.errors].sort((a, b) => branchScore(b) - branchScore(a));
      return branches[0].flatMap((i) => toIssues(i, path, knownKeys));
    }
    default:
      return [{ path, message: issue.message }];
  }
}

/** Where `path` is in `text` (the key itself when `atKey`), as a 1-based line and column. */
function locate(text: string, path: ConfigPath, atKey: boolean): { line: number; column: number } | undefined {
  const root = jsonc.parseTree(text);
  if (!root) return undefined;
  for (let n = path.length; n >= 0; n--) {
    const node = jsonc.findNodeAtLocation(root, [...path.slice(0, n)]);
    if (!node) continue;
    const keyNode = atKey && n === path.length && node.parent?.type === 'property' ? node.parent.children?.[0] : undefined;
    return lineColumn(text, (keyNode ?? node).offset);
  }
  return undefined;
}

/**
 * Validates `raw` against `schema`; every problem becomes a ConfigIssue (with line and column when `text` is given).
 * Returns the parsed value (defaults applied).
 */
export function validateConfig<S extends z.ZodType>(schema: S, raw: unknown, source: string, text?: string): z.output<S> {
  const knownKeys = new Map<unknown, string[]>();
  const r = schema.safeParse(raw, { error: configErrorMap(knownKeys), reportInput: true });
  if (r.success) return r.data;
  const issues = r.error.issues.flatMap((i) => toIssues(i, [], knownKeys));
  const located = issues.map((i) => {
    const pos = text === undefined ? undefined : locate(text, i.path, i.message.startsWith('unknown key'));
    return pos ? { ...i, ...pos } : i;
  });
  throw new ConfigError(source, located);
}

/** Reads, parses and validates a JSON configuration file. */
export async function readConfigFile<S extends z.ZodType>(schema: S, file: string): Promise<z.output<S>> {
  const { raw, text } = await readJsonFile(file);
  return validateConfig(schema, raw, file, text);
}
