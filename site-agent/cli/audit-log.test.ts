import { describe, expect, it } from 'vitest';
import { formatAudit, type AuditSummary } from './audit-log.ts';

const empty: AuditSummary = { sessions: [], updates: [], evaluations: [], statistics: [], bytesSent: 0, bytesReceived: 0, failures: [], malformedLines: 0 };

describe('fedsfda site audit', () => {
  it("shows what a site spent in distributed DP, and does not list its local accounting as sent metrics", () => {
    const text = formatAudit({
      ...empty,
      updates: [
        {
          round: 2,
          time: 't',
          bytes: 100,
          numExamples: 48,
          metrics: { trainLoss: 0.5, 'dp.epsilon': 4.42, 'dp.delta': 1e-5, 'dp.clip': 0.5, 'dp.siteSigma': 29095.2, 'dp.updateNorm': 2.8 },
        },
      ],
    });
    expect(text).toContain('and metrics trainLoss\n');
    expect(text).toMatch(/round 2: differential privacy: update clipped to norm 0.5 .* epsilon 4.420 at delta 0.00001/);
    expect(text).not.toMatch(/metrics .*dp\.updateNorm/);
  });

  it('says nothing about DP for a run without it', () => {
    expect(formatAudit({ ...empty, updates: [{ round: 1, time: 't', bytes: 1, numExamples: 1, metrics: { trainLoss: 1 } }] })).not.toContain('differential privacy');
  });
});
