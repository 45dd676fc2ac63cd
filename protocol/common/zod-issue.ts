/**
 * The one-line reason a schema refused a value, as fedsfda's typed errors carry it: the first issue of a ZodError as
 * `path: message`, the path's keys and array indices joined by dots (`targets.2.shift`, not config.ts's
 * `targets[2].shift`: these messages were written that way before the helper and tests pin them).
 *
 *   describeFirstIssue(e)                                            // 'data.targets: Too small: expected array to have >=3 items'
 *   describeFirstIssue(e)                                            // '(root): Invalid input: expected object, received null'
 *   describeFirstIssue(e, { prefix: 'biasCorrection.', root: '' })   // 'biasCorrection.degree: Too big: ...'
 */
import type { z } from 'zod';

export interface IssueFormat {
  /** Text in front of the path (e.g. the option's name and a dot, when the schema checked one field of a larger object). */
  readonly prefix?: string;
  /** What an empty path reads as (default `(root)`). */
  readonly root?: string;
  /** The whole text when the error carries no issue (default `invalid`). */
  readonly none?: string;
}

/** `prefix + path + ': ' + message` of the error's first issue (see the file comment for the path format). */
export function describeFirstIssue(error: z.ZodError, format: IssueFormat = {}): string {
  const issue = error.issues[0];
  if (issue === undefined) return format.none ?? 'invalid';
  return `${format.prefix ?? ''}${issue.path.join('.') || (format.root ?? '(root)')}: ${issue.message}`;
}
