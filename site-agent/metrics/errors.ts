/** Closed set of reasons a metric call can refuse its input. */
export type MetricsErrorCode = 'BAD_DIMS' | 'BAD_SPACING' | 'SIZE_MISMATCH' | 'BAD_LABEL' | 'BAD_NUM_CLASSES';

/** Bad input to a metric function: names what is wrong instead of returning garbage. */
export class MetricsError extends Error {
  readonly code: MetricsErrorCode;
  constructor(code: MetricsErrorCode, message: string) {
    super(message);
    this.name = 'MetricsError';
    this.code = code;
  }
}
