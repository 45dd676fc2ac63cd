export { registerSiteCommands } from './site-command.ts';
export { AuditLog, summarizeAudit, formatAudit, type AuditSummary, type AuditRecord, type AuditHeader } from './audit-log.ts';
