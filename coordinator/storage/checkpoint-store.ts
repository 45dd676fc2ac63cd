/**
 * Checkpoints: the global weights + round number + history (+ server-optimizer state) in a directory, so a restarted
 * coordinator resumes after the last completed round.
 *
 * Layout (v2): `weights-r<N>.fsws` (and `state-r<N>.fsws`) written atomically per round; `history.jsonl`, one round
 * record per line, APPENDED per round (a checkpoint costs one record, not the whole history); `checkpoint.json`
 * written atomically last, naming the weights file and how many bytes of history.jsonl belong to it. A crash at any
 * point leaves the previous checkpoint.json, whose weights file still exists and whose history prefix is intact; a
 * torn or orphaned tail of history.jsonl beyond that prefix is cut off before the next append. A v1 checkpoint (the
 * whole history inside checkpoint.json) is read and migrated on the next save.
 */
import { mkdir, open, readFile, readdir, truncate, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { removeLeftoverTempFiles, writeFileAtomic } from '../../protocol/common/index.ts';
import { decodeWeightSet, encodeWeightSet, type WeightSet } from '../../protocol/index.ts';
import { roundRecordSchema, type RoundRecord } from '../../protocol/contracts/index.ts';

export interface Checkpoint {
  /** Last completed round (0 = none yet, or only the initial evaluation). */
  round: number;
  weights: WeightSet;
  history: RoundRecord[];
  strategy: string;
  strategyState: WeightSet | null;
}

/** What one save adds: the round just completed and its record. */
export interface CheckpointUpdate {
  round: number;
  weights: WeightSet;
  record: RoundRecord;
  strategy: string;
  strategyState: WeightSet | null;
}

export class CheckpointError extends Error {
  override readonly name = 'CheckpointError';
  constructor(
    readonly code: 'corrupt' | 'io',
    reason: string,
  ) {
    super(`${code}: ${reason}`);
  }
}

const HISTORY_FILE = 'history.jsonl';
const CHECKPOINT_FILE = 'checkpoint.json';

const common = {
  round: z.number().int().min(0),
  strategy: z.string(),
  weightsFile: z.string().regex(/^weights-r\d+\.fsws$/),
  stateFile: z.string().regex(/^state-r\d+\.fsws$/).nullable(),
  savedAt: z.string(),
};
const fileSchema = z.discriminatedUnion('v', [
  z.object({ v: z.literal(1), ...common, history: z.array(roundRecordSchema) }),
  z.object({ v: z.literal(2), ...common, historyRecords: z.number().int().min(0), historyBytes: z.number().int().min(0) }),
]);

export class CheckpointStore {
  /** Records and bytes of history.jsonl that belong to the last checkpoint (null: not known yet; read from disk). */
  private committed: { records: number; bytes: number } | null = null;
  /** History of a v1 checkpoint, written out as history.jsonl on the next save. */
  private legacyHistory: RoundRecord[] | null = null;

  constructor(readonly dir: string) {}

  async save(cp: CheckpointUpdate): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    const committed = await this.committedPrefix();
    const weightsFile = `weights-r${cp.round}.fsws`;
    const stateFile = cp.strategyState ? `state-r${cp.round}.fsws` : null;
    await writeFileAtomic(join(this.dir, weightsFile), encodeWeightSet(cp.weights));
    if (stateFile && cp.strategyState) await writeFileAtomic(join(this.dir, stateFile), encodeWeightSet(cp.strategyState));
    const appended = await this.appendHistory(committed, [...(this.legacyHistory ?? []), cp.record]);
    const json = { v: 2, round: cp.round, strategy: cp.strategy, weightsFile, stateFile, historyRecords: appended.records, historyBytes: appended.bytes, savedAt: new Date().toISOString() };
    await writeFileAtomic(join(this.dir, CHECKPOINT_FILE), JSON.stringify(json));
    this.committed = appended;
    this.legacyHistory = null;
    // Older weight files are garbage once the JSON points at the new one.
    for (const f of await readdir(this.dir)) {
      if ((/^weights-r\d+\.fsws$/.test(f) && f !== weightsFile) || (/^state-r\d+\.fsws$/.test(f) && f !== stateFile)) {
        await unlink(join(this.dir, f)).catch(() => {});
      }
    }
  }

  /** The committed prefix of history.jsonl, from the checkpoint on disk when this store has not saved yet. */
  private async committedPrefix(): Promise<{ records: number; bytes: number }> {
    if (this.committed) return this.committed;
    const parsed = await this.readCheckpointFile().catch(() => null);
    if (parsed?.v === 2) return { records: parsed.historyRecords, bytes: parsed.historyBytes };
    if (parsed?.v === 1) this.legacyHistory ??= parsed.history as RoundRecord[];
    return { records: 0, bytes: 0 };
  }

  /** Cut history.jsonl back to the committed prefix (dropping a torn tail), append the records, fsync. */
  private async appendHistory(committed: { records: number; bytes: number }, records: RoundRecord[]): Promise<{ records: number; bytes: number }> {
    const path = join(this.dir, HISTORY_FILE);
    const fh = await open(path, 'a+');
    try {
      const { size } = await fh.stat();
      if (size !== committed.bytes) await truncate(path, committed.bytes);
      const text = records.map((r) => `${JSON.stringify(r)}\n`).join('');
      await fh.appendFile(text);
      await fh.sync();
      return { records: committed.records + records.length, bytes: committed.bytes + Buffer.byteLength(text) };
    } finally {
      await fh.close();
    }
  }

  private async readCheckpointFile(): Promise<z.infer<typeof fileSchema> | null> {
    let text: string;
    try {
      text = await readFile(join(this.dir, CHECKPOINT_FILE), 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw new CheckpointError('io', (e as Error).message);
    }
    try {
      return fileSchema.parse(JSON.parse(text));
    } catch (e) {
      throw new CheckpointError('corrupt', `${CHECKPOINT_FILE}: ${(e as Error).message.slice(0, 200)}`);
    }
  }

  private async readHistory(records: number, bytes: number): Promise<RoundRecord[]> {
    let buf: Buffer;
    try {
      buf = await readFile(join(this.dir, HISTORY_FILE));
    } catch (e) {
      throw new CheckpointError('corrupt', `${HISTORY_FILE}: ${(e as Error).message}`);
    }
    if (buf.length < bytes) throw new CheckpointError('corrupt', `${HISTORY_FILE} has ${buf.length} bytes, the checkpoint names ${bytes}`);
    const lines = buf.subarray(0, bytes).toString('utf8').split('\n').filter((l) => l.length > 0);
    if (lines.length !== records) throw new CheckpointError('corrupt', `${HISTORY_FILE} holds ${lines.length} records, the checkpoint names ${records}`);
    try {
      return lines.map((l) => roundRecordSchema.parse(JSON.parse(l)) as RoundRecord);
    } catch (e) {
      throw new CheckpointError('corrupt', `${HISTORY_FILE}: ${(e as Error).message.slice(0, 200)}`);
    }
  }

  /** The latest checkpoint, or null if the directory holds none. Throws CheckpointError if it is corrupt. */
  async load(): Promise<Checkpoint | null> {
    // Temp files of a coordinator killed mid-save are garbage: the checkpoint they would have become was never committed.
    await removeLeftoverTempFiles(this.dir);
    const parsed = await this.readCheckpointFile();
    if (!parsed) return null;
    const history = parsed.v === 1 ? (parsed.history as RoundRecord[]) : await this.readHistory(parsed.historyRecords, parsed.historyBytes);
    if (parsed.v === 2) this.committed = { records: parsed.historyRecords, bytes: parsed.historyBytes };
    else this.legacyHistory = history;
    try {
      const weights = decodeWeightSet(new Uint8Array(await readFile(join(this.dir, parsed.weightsFile))));
      const strategyState = parsed.stateFile ? decodeWeightSet(new Uint8Array(await readFile(join(this.dir, parsed.stateFile)))) : null;
      return { round: parsed.round, weights, history, strategy: parsed.strategy, strategyState };
    } catch (e) {
      throw new CheckpointError('corrupt', `weights: ${(e as Error).message}`);
    }
  }
}
