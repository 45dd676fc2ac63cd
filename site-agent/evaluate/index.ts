export { evaluateVolumes, scorePredictions, groupByCase, type VolumeEvaluation, type VolumeGroup } from './evaluate-volumes.ts';
