/**
 * Full evaluation of a model on a labelled split: predict every slice with the BN running statistics, then score
 * each volume with the one scorer (score-volumes.ts).
 */
import type { SliceDataset } from '../data/index.ts';
import type { UNet } from '../model/index.ts';
import { predict, predictAsync } from './predict.ts';
import { scoreVolumes, scoreVolumesAsync, type VolumeEvaluation } from './score-volumes.ts';

/** Scores predicted label maps against the dataset's own labels (see scoreVolumes). */
export function scorePredictions(pred: Uint8Array, data: SliceDataset): VolumeEvaluation {
  return scoreVolumes(pred, data.labels, data, data.numClasses);
}

/** Predicts with BN running statistics and scores per volume. */
export function evaluateVolumes(unet: UNet, data: SliceDataset, batchSize = 8): VolumeEvaluation {
  const pred = predict(unet, data.images, data.n, data.height, data.width, data.channels, batchSize);
  return scorePredictions(pred, data);
}

/**
 * `evaluateVolumes` giving the event loop a turn after every batch and every scored volume: what a site agent runs,
 * so its heartbeat is answered during a long evaluation. Same batches, same scorer, same result.
 */
export async function evaluateVolumesAsync(unet: UNet, data: SliceDataset, batchSize = 8): Promise<VolumeEvaluation> {
  const pred = await predictAsync(unet, data.images, data.n, data.height, data.width, data.channels, batchSize);
  return scoreVolumesAsync(pred, data.labels, data, data.numClasses);
}
