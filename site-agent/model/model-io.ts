import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { describeFirstIssue } from '../../protocol/common/index.ts';
import { sizeOfShape, type WeightSet } from '../../protocol/index.ts';
import { ModelError } from './model-error.ts';
import { createUNet, type UNet } from './unet.ts';
import { UNetConfigSchema } from './unet-config.ts';

/** Bumped on any incompatible change of model.json / weights.bin. */
export const MODEL_FORMAT_VERSION = 1;
export const MODEL_JSON = 'model.json';
export const WEIGHTS_BIN = 'weights.bin';

const ManifestSchema = z
  .object({
    format: z.literal('fedsfda-unet'),
    version: z.number().int(),
    config: z.unknown(),
    tensors: z.array(
      z
        .object({
          name: z.string().min(1),
          shape: z.array(z.number().int().min(0)),
          dtype: z.literal('float32'),
          /** Byte offset into weights.bin. */
          offset: z.number().int().min(0),
          byteLength: z.number().int().min(0),
        })
        .strict(),
    ),
    /** Total size of weights.bin in bytes. */
    byteLength: z.number().int().min(0),
    /** Hex SHA-256 of weights.bin, so a corrupted (not just truncated) file is caught. */
    sha256: z.string().regex(/^[0-9a-f]{64}$/),
  })
  .strict();

export type ModelManifest = z.infer<typeof ManifestSchema>;

/**
 * Writes `dir/model.json` (config, version, names, shapes, dtype, byte offsets, checksum) and `dir/weights.bin`
 * (little-endian float32, tensors back to back in getWeights() order). Files are written under temporary names and
 * renamed, so a crash never leaves a half-written model behind a valid manifest.
 */
export async function saveModel(unet: UNet, dir: string): Promise<void> {
  const ws = unet.getWeights();
  const total = ws.reduce((acc, t) => acc + t.data.length * 4, 0);
  const bytes = new Uint8Array(total);
  const view = new DataView(bytes.buffer);
  const tensors: ModelManifest['tensors'] = [];
  let offset = 0;
  for (const t of ws) {
    tensors.push({ name: t.name, shape: [...t.shape], dtype: 'float32', offset, byteLength: t.data.length * 4 });
    for (let i = 0; i < t.data.length; i++) view.setFloat32(offset + 4 * i, t.data[i], true);
    offset += t.data.length * 4;
  }
  const manifest: ModelManifest = {
    format: 'fedsfda-unet',
    version: MODEL_FORMAT_VERSION,
    config: unet.config,
    tensors,
    byteLength: total,
    sha256: createHash('sha256').update(bytes).digest('hex'),
  };
  await mkdir(dir, { recursive: true });
  const tmpBin = join(dir, `${WEIGHTS_BIN}.tmp-${process.pid}`);
  const tmpJson = join(dir, `${MODEL_JSON}.tmp-${process.pid}`);
  await writeFile(tmpBin, bytes);
  await writeFile(tmpJson, JSON.stringify(manifest, null, 2) + '\n');
  await rename(tmpBin, join(dir, WEIGHTS_BIN));
  await rename(tmpJson, join(dir, MODEL_JSON));
}

/** Reads and validates `dir/model.json` only (no weights), e.g. for `model info`. */
export async function readModelManifest(dir: string): Promise<ModelManifest> {
  const path = join(dir, MODEL_JSON);
  const text = await readOrThrow(path);
  let raw: unknown;
  try {
    raw = JSON.parse(text.toString('utf8'));
  } catch (e) {
    throw new ModelError('MODEL_FILE_CORRUPT', `${path} is not valid JSON: ${(e as Error).message}`);
  }
  if (typeof raw === 'object' && raw !== null && 'version' in raw && raw.version !== MODEL_FORMAT_VERSION) {
    throw new ModelError(
      'MODEL_VERSION',
      `${path} has format version ${String(raw.version)}, this build reads version ${MODEL_FORMAT_VERSION}`,
    );
  }
  const r = ManifestSchema.safeParse(raw);
  if (!r.success) throw new ModelError('MODEL_FILE_CORRUPT', `${path}: ${describeFirstIssue(r.error)}`);
  const m = r.data;
  const cfg = UNetConfigSchema.safeParse(m.config);
  if (!cfg.success) throw new ModelError('MODEL_FILE_CORRUPT', `${path}: ${describeFirstIssue(cfg.error, { prefix: 'config.', root: '' })}`);
  let expected = 0;
  for (const t of m.tensors) {
    if (t.offset !== expected || t.byteLength !== sizeOfShape(t.shape) * 4) {
      throw new ModelError('MODEL_FILE_CORRUPT', `${path}: tensor '${t.name}' has inconsistent offset/byteLength`);
    }
    expected += t.byteLength;
  }
  if (expected !== m.byteLength) {
    throw new ModelError('MODEL_FILE_CORRUPT', `${path}: byteLength ${m.byteLength} does not match the tensors (${expected})`);
  }
  return m;
}

/**
 * Loads a model saved by saveModel. Typed errors: MODEL_FILE_MISSING, MODEL_FILE_CORRUPT (bad JSON, schema,
 * checksum), MODEL_FILE_TRUNCATED (weights.bin shorter/longer than the manifest), MODEL_VERSION, WEIGHT_MISMATCH
 * (names/shapes that do not fit the config's architecture).
 */
export async function loadModel(dir: string): Promise<UNet> {
  const m = await readModelManifest(dir);
  const binPath = join(dir, WEIGHTS_BIN);
  const bin = await readOrThrow(binPath);
  if (bin.length !== m.byteLength) {
    throw new ModelError('MODEL_FILE_TRUNCATED', `${binPath} has ${bin.length} bytes, model.json expects ${m.byteLength}`);
  }
  const digest = createHash('sha256').update(bin).digest('hex');
  if (digest !== m.sha256) throw new ModelError('MODEL_FILE_CORRUPT', `${binPath} does not match the checksum in model.json`);
  const view = new DataView(bin.buffer, bin.byteOffset, bin.byteLength);
  const ws: WeightSet = m.tensors.map((t) => {
    const data = new Float32Array(t.byteLength / 4);
    for (let i = 0; i < data.length; i++) data[i] = view.getFloat32(t.offset + 4 * i, true);
    return { name: t.name, shape: t.shape, data };
  });
  // Parsed by readModelManifest; seed 0 only fills the variables before setWeights overwrites every one of them.
  const unet = createUNet(UNetConfigSchema.parse(m.config), 0);
  try {
    unet.setWeights(ws);
  } catch (e) {
    unet.dispose();
    if (e instanceof ModelError) throw new ModelError(e.code, `${dir}: ${e.message}`);
    throw e;
  }
  return unet;
}

async function readOrThrow(path: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new ModelError('MODEL_FILE_MISSING', `${path} does not exist`);
    throw new ModelError('MODEL_FILE_CORRUPT', `${path} cannot be read: ${(e as Error).message}`);
  }
}
