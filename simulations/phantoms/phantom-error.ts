/** Thrown when phantom generation options are invalid (bad counts, sizes, class numbers, shifts). */
export class PhantomError extends Error {
  readonly code = 'INVALID_PHANTOM_OPTIONS' as const;
  constructor(message: string) {
    super(message);
    this.name = 'PhantomError';
  }
}

export function requireInt(name: string, v: unknown, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new PhantomError(`${name} must be an integer in [${min}, ${max}], got ${String(v)}`);
  }
  return v;
}
