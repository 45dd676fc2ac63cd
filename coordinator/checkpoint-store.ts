/**
 * Checkpoints: global weights + round number + history (+ server-optimizer state) in a directory, so a restarted
 * coordinator resumes after the last completed round. Writes are atomic (temp file + rename), and the JSON names
 * the weights file it belongs to, so a crash between the two writes never pairs new JSON with old weights.
 */
import { mkdir, readFile, readdir, unlink } from 'node:fs/promises';
import { writeFileAtomic } from '../protocol/common/atomic-write.ts';
import { join } from 'node:path';
import { z } from 'zod';
import type { WeightSet } from '../protocol/named-tensor.ts';
import { decodeWeightSet, encodeWeightSet } from '../protocol/tensor-codec.ts';
import { roundRecordSchema, type RoundRecord } from './round-history.ts';

export interface Checkpoint {
  /** Last completed round (0 = none yet). */
  round: number;
  weights: WeightSet;
  history: RoundRecord[];
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

const fileSchema = z.object({
  v: z.literal(1),
  round: z.number().int().min(0),
  strategy: z.string(),
  weightsFile: z.string().regex(/^weights-r\d+\.fsws$/),
  stateFile: z.string().regex(/^state-r\d+\.fsws$/).nullable(),
  history: z.array(roundRecordSchema),
  savedAt: z.string(),
});

const writeAtomic = writeFileAtomic;

export class CheckpointStore {
  constructor(readonly dir: string) {}

  async save(cp: Checkpoint): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    const weightsFile = `weights-r${cp.round}.fsws`;
    const stateFile = cp.strategyState ? `state-r${cp.round}.fsws` : null;
    await writeAtomic(join(this.dir, weightsFile), encodeWeightSet(cp.weights));
    if (stateFile && cp.strategyState) await writeAtomic(join(this.dir, stateFile), encodeWeightSet(cp.strategyState));
    const json = { v: 1, round: cp.round, strategy: cp.strategy, weightsFile, stateFile, history: cp.history, savedAt: new Date().toISOString() };
    await writeAtomic(join(this.dir, 'checkpoint.json'), JSON.stringify(json));
    // Older weight files are garbage once the JSON points at the new one.
    for (const f of await readdir(this.dir)) {
      if ((/^weights-r\d+\.fsws$/.test(f) && f !== weightsFile) || (/^state-r\d+\.fsws$/.test(f) && f !== stateFile)) {
        await unlink(join(this.dir, f)).catch(() => {});
      }
    }
  }

  /** The latest checkpoint, or null if the directory holds none. Throws CheckpointError if it is corrupt. */
  async load(): Promise<Checkpoint | null> {
    let text: string;
    try {
      text = await readFile(join(this.dir, 'checkpoint.json'), 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw new CheckpointError('io', (e as Error).message);
    }
    let parsed: z.infer<typeof fileSchema>;
    try {
      parsed = fileSchema.parse(JSON.parse(text));
    } catch (e) {
      throw new CheckpointError('corrupt', `checkpoint.json: ${(e as Error).message.slice(0, 200)}`);
    }
    try {
      const weights = decodeWeightSet(new Uint8Array(await readFile(join(this.dir, parsed.weightsFile))));
      const strategyState = parsed.stateFile ? decodeWeightSet(new Uint8Array(await readFile(join(this.dir, parsed.stateFile)))) : null;
      return { round: parsed.round, weights, history: parsed.history as RoundRecord[], strategy: parsed.strategy, strategyState };
    } catch (e) {
      throw new CheckpointError('corrupt', `weights: ${(e as Error).message}`);
    }
  }
}
