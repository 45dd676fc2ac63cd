/** site-agent/evaluation/: inference (predict) and the one volume scorer every path reports through. */
export { predict, predictAsync, predictProbs } from './predict.ts';
export { groupByCase, scoreVolumes, scoreVolumesAsync, type SliceLayout, type VolumeEvaluation, type VolumeGroup } from './score-volumes.ts';
export { evaluateVolumes, evaluateVolumesAsync, scorePredictions } from './evaluate-volumes.ts';
export { evaluateDice, type DiceSummary } from './evaluate-dice.ts';
