export { applyPartition, itemsFromSliceDataset, PartitionError, selectCases, type Partition, type PartitionItem } from './partition-item.ts';
export {
  keyClass,
  partitionByScanner,
  partitionDirichlet,
  partitionQuantitySkew,
  sampleDirichlet,
  type ByScannerOptions,
  type DirichletOptions,
  type QuantitySkewOptions,
} from './partitioners.ts';
export { classHistogram, formatPartitionSummary, summarizePartition, type SiteClassSummary } from './partition-summary.ts';
