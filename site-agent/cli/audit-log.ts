/**
 * What left the building: the site agent appends one JSON line per event (what was sent, how many bytes,
 * to whom), and `fedsfda site audit FILE` summarises it for hospital IT / security.
 */
import { appendFileSync, readFileSync } from 'node:fs';
import type { SiteProgress } from '../client/index.ts';

export interface AuditHeader {
  readonly type: 'session';
  readonly siteId: string;
  readonly coordinatorUrl: string;
  /** The pinned coordinator identity key (base64): the only party that can open the envelopes. */
  readonly coordinatorKey: string;
}

export type AuditRecord = (AuditHeader | SiteProgress) & { readonly time: string };

/** Appends synchronously, so that a crash never loses an already-sent event. */
export class AuditLog {
  constructor(private readonly file: string) {}

  write(event: AuditHeader | SiteProgress): void {
    appendFileSync(this.file, `${JSON.stringify({ time: new Date().toISOString(), ...event })}\n`);
  }
}

export interface AuditSummary {
  readonly sessions: { siteId: string; coordinatorUrl: string; coordinatorKey: string; time: string }[];
  /** One entry per model update sent: the encrypted update's size and the metric names and values that went with it. */
  readonly updates: { round: number; time: string; bytes: number; numExamples: number; metrics: Record<string, number> }[];
  readonly evaluations: { round: number; time: string; numExamples: number; metrics: Record<string, number> }[];
  /** One entry per federated statistic contributed: its name and the masked vector's size (only sums are revealed). */
  readonly statistics: { round: number; time: string; name: string; maskedBytes: number }[];
  /** Totals over connections as counted by the transport (all envelopes, including handshakes and acks). */
  readonly bytesSent: number;
  readonly bytesReceived: number;
  readonly failures: { round: number; stage: string; reason: string }[];
  readonly malformedLines: number;
}

export function summarizeAudit(file: string): AuditSummary {
  const out = {
    sessions: [] as AuditSummary['sessions'],
    updates: [] as AuditSummary['updates'],
    evaluations: [] as AuditSummary['evaluations'],
    statistics: [] as AuditSummary['statistics'],
    bytesSent: 0,
    bytesReceived: 0,
    failures: [] as AuditSummary['failures'],
    malformedLines: 0,
  };
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (line.trim() === '') continue;
    let r: AuditRecord;
    try {
      r = JSON.parse(line) as AuditRecord;
    } catch {
      out.malformedLines++;
      continue;
    }
    switch (r.type) {
      case 'session':
        out.sessions.push({ siteId: r.siteId, coordinatorUrl: r.coordinatorUrl, coordinatorKey: r.coordinatorKey, time: r.time });
        break;
      case 'fit':
        out.updates.push({ round: r.round, time: r.time, bytes: r.updateBytes, numExamples: r.numExamples, metrics: r.metrics });
        break;
      case 'evaluate':
        out.evaluations.push({ round: r.round, time: r.time, numExamples: r.numExamples, metrics: r.metrics });
        break;
      case 'statistics':
        out.statistics.push({ round: r.round, time: r.time, name: r.name ?? 'unnamed', maskedBytes: r.maskedBytes });
        break;
      case 'disconnected':
        out.bytesSent += r.bytesSent;
        out.bytesReceived += r.bytesReceived;
        break;
      case 'failed':
        out.failures.push({ round: r.round, stage: r.stage, reason: r.reason });
        break;
      case 'connected':
      case 'finished':
        break;
      default:
        out.malformedLines++;
    }
  }
  return out;
}

export function formatAudit(s: AuditSummary): string {
  const lines: string[] = [];
  for (const x of s.sessions) lines.push(`${x.time}  site ${x.siteId} -> ${x.coordinatorUrl} (coordinator key ${x.coordinatorKey})`);
  for (const u of s.updates) {
    // `dp.*` entries are this site's own differential-privacy accounting (distributed DP), kept local, never sent.
    const sent = Object.keys(u.metrics).filter((k) => !k.startsWith('dp.'));
    lines.push(
      `${u.time}  round ${u.round}: sent an encrypted model update of ${u.bytes} bytes (trained on ${u.numExamples} slices) ` +
        `and metrics ${sent.join(', ') || '(none)'}`,
    );
    const eps = u.metrics['dp.epsilon'];
    if (eps !== undefined) {
      lines.push(
        `${u.time}  round ${u.round}: differential privacy: update clipped to norm ${u.metrics['dp.clip']} and noised by this site ` +
          `(discrete Gaussian sigma ${u.metrics['dp.siteSigma']?.toFixed(1)} quantization steps); spent so far by this site's own accounting: epsilon ${eps.toFixed(3)} at delta ${u.metrics['dp.delta']}`,
      );
    }
  }
  for (const e of s.evaluations) {
    lines.push(`${e.time}  round ${e.round}: sent evaluation metrics ${Object.keys(e.metrics).join(', ') || '(none)'} over ${e.numExamples} slices`);
  }
  for (const x of s.statistics) {
    lines.push(`${x.time}  after round ${x.round}: sent the masked "${x.name}" statistics (${x.maskedBytes} bytes; the coordinator learns only their sum over sites)`);
  }
  for (const f of s.failures) lines.push(`round ${f.round} ${f.stage} failed: ${f.reason}`);
  lines.push(`total on the wire: ${s.bytesSent} bytes sent, ${s.bytesReceived} bytes received (the protocol has no message type that can carry an image or a label)`);
  if (s.malformedLines > 0) lines.push(`warning: ${s.malformedLines} unreadable line(s) in the audit log`);
  return lines.join('\n');
}
