/**
 * Deadlines for tests that do not test deadlines. CI and developers share 2 cores with other jobs (load 10-40 seen),
 * so a stage or handshake that takes 1 s idle can take a minute; these are bounds against a hang, never speed
 * targets. Tests of the timeout paths themselves use fake timers and their own small values.
 */
export const STAGE_BOUND_MS = 300_000;
export const HANDSHAKE_BOUND_MS = 120_000;
/** A child process (a CLI run) that has not finished by then is hung: below vitest's 600 s test bound. */
export const CHILD_PROCESS_BOUND_MS = 540_000;

/** Coordinator timeouts for tests: every stage bounded generously. */
export const GENEROUS_TIMEOUTS = { fitMs: STAGE_BOUND_MS, evaluateMs: STAGE_BOUND_MS, handshakeMs: HANDSHAKE_BOUND_MS } as const;
