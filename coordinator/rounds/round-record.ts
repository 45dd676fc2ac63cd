/** What the coordinator records per round: one schema in protocol/contracts/round-record.ts, re-exported here. */
export { roundRecordSchema, type RoundRecord, type SiteRoundRecord } from '../../protocol/contracts/index.ts';
