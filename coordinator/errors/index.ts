/** coordinator/errors/: the coordinator's typed in-process error, shared by every folder. */
export { CoordinatorError, type CoordinatorErrorCode } from './coordinator-error.ts';
