/** Generic building blocks shared by every part of fedsfda (no wire types, no tfjs). */
export {
  type Logger,
  type LoggerOptions,
  type LogLevel,
  type LogFormat,
  LOG_LEVELS,
  LOG_FORMATS,
  silentLogger,
  createLogger,
  colourAllowed,
  getLogger,
  setProcessLogger,
} from './logger.ts';
export {
  type ConfigIssue,
  type ConfigPath,
  ConfigError,
  formatPath,
  suggestClosest,
  parseJsonText,
  readJsonFile,
  validateConfig,
  readConfigFile,
} from './config.ts';
export { Rng } from './rng.ts';
export { describeFirstIssue, type IssueFormat } from './zod-issue.ts';
export { bytesEqual, concatBytes, decodeBase64Strict, decodeUtf8Strict, isBytes, lengthPrefixed, toBase64, toHex, utf8 } from './bytes.ts';
export { removeLeftoverTempFiles, writeFileAtomic, type AtomicWriteOptions } from './atomic-write.ts';
