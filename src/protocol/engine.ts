// The engine protocol: requests (host or CLI → engine), events and results (engine → host or CLI), and the
// validator the engine applies to what it is sent. One module of discriminated unions: `type` names the message.
import type { ClusterSummary, CounterfactualSummary, ExplainImages, ExplainMethod, ExplainOptions, ExplainTarget, ExplainedTarget, ExplanationScores, Heatmap, Neighbour, PrototypeProbability, RanOn, SkippedFile, TrainOptions } from './options';
import type { MapLayout } from './mapPoints';

export interface TrainRequest {
  type: 'train';
  id: number;
  imagesDir: string;
  runDir: string;
  options?: Partial<TrainOptions>;
  /** Continue from the run folder's checkpoint. */
  resume?: boolean;
  /**
   * A fresh run may replace one already in runDir (its run.json or checkpoint): without this, RUN_EXISTS. The old
   * files go once the new run saves its first checkpoint; metrics.jsonl starts over.
   */
  overwrite?: boolean;
}

export interface CancelRequest {
  type: 'cancel';
  id: number;
  /** The id of the request to cancel. */
  targetId: number;
}

export interface IndexRequest {
  type: 'index';
  id: number;
  runDir: string;
}

export interface NeighboursRequest {
  type: 'neighbours';
  id: number;
  runDir: string;
  /** An image path (absolute, or relative to the run's images folder). */
  image: string;
  k: number;
  /** Scan every image even when the run has an HNSW index. */
  exact?: boolean;
}

export interface EvaluateRequest {
  type: 'evaluate';
  id: number;
  runDir: string;
  /** Also score k-means on the raw pixels of the same images (plain and L2-normalised): the baseline to beat. */
  pixelBaseline?: boolean;
}

export interface ExplainRequest {
  type: 'explain';
  id: number;
  runDir: string;
  /** An image path (absolute, or relative to the run's images folder). */
  image: string;
  method: ExplainMethod;
  /** Default: the assigned prototype for CAMs and gradients, the nearest other cluster for counterfactuals, the nearest neighbour for the occlusion and Interaction-CAM methods. */
  target?: ExplainTarget;
  /** Write the PNGs into this folder and list their paths in the result. */
  outDir?: string;
  /** Put the PNGs in the result as base64 (for webviews). */
  inlinePngs?: boolean;
  options?: Partial<ExplainOptions>;
  seed?: number;
}

export interface EvaluateExplanationsRequest {
  type: 'evaluate-explanations';
  id: number;
  runDir: string;
  methods: ExplainMethod[];
  /** How many of the run's images to evaluate on (a seeded sample). */
  images: number;
  /** What each image is compared with (default: its nearest neighbour). */
  pair?: 'neighbour' | 'augmented';
  options?: Partial<ExplainOptions>;
  seed?: number;
}

/** Counterfactual methods, and Grad-CAM's faithfulness to the cluster, measured over N images of a run. */
export interface EvaluateCounterfactualsRequest {
  type: 'evaluate-counterfactuals';
  id: number;
  runDir: string;
  /** Default: counterfactual, counterfactual-mask, counterfactual-pixel. */
  methods?: ExplainMethod[];
  /** How many of the run's images (a seeded sample); each is moved toward its nearest other cluster. */
  images: number;
  options?: Partial<ExplainOptions>;
  seed?: number;
}

/** Everything the cluster map and the gallery need about a run (see RunOverview). */
export interface OverviewRequest {
  type: 'overview';
  id: number;
  runDir: string;
}

export interface ExportOnnxRequest {
  type: 'exportOnnx';
  id: number;
  runDir: string;
  outPath: string;
}

/** Computes the run's UMAP layout (kept in the run folder) from its neighbour graph. */
export interface LayoutRequest {
  type: 'layout';
  id: number;
  runDir: string;
  layout: 'umap';
  seed?: number;
  /** Recompute even when the run folder holds one. */
  force?: boolean;
}

/** Writes map-points.bin for the cluster map and says where it is. */
export interface MapPointsRequest {
  type: 'mapPoints';
  id: number;
  runDir: string;
}

export interface DuplicatesRequest {
  type: 'duplicates';
  id: number;
  runDir: string;
  /** Cosine similarity of backbone features at or above which two images are near-duplicates (default 0.98). */
  threshold?: number;
}

export interface OutliersRequest {
  type: 'outliers';
  id: number;
  runDir: string;
  /** Score: distance to the k-th nearest neighbour (default 20). */
  k?: number;
  /** How many to list, most isolated first (default 100). */
  limit?: number;
}

/** csv and json for reading by eye or by script; parquet (typed columns) for pandas, polars and DuckDB. */
export type ExportFormat = 'csv' | 'json' | 'parquet';

export interface ExportAssignmentsRequest {
  type: 'exportAssignments';
  id: number;
  runDir: string;
  format: ExportFormat;
  outPath: string;
}

export interface ShutdownRequest {
  type: 'shutdown';
  id: number;
}

export type EngineRequest =
  | TrainRequest
  | CancelRequest
  | IndexRequest
  | NeighboursRequest
  | EvaluateRequest
  | ExplainRequest
  | EvaluateExplanationsRequest
  | EvaluateCounterfactualsRequest
  | OverviewRequest
  | ExportOnnxRequest
  | LayoutRequest
  | MapPointsRequest
  | DuplicatesRequest
  | OutliersRequest
  | ExportAssignmentsRequest
  | ShutdownRequest;


export type WorkPhase = 'scan' | 'decode' | 'train' | 'index' | 'evaluate' | 'explain' | 'layout' | 'curate';

export interface ProgressEvent {
  type: 'progress';
  id: number;
  phase: WorkPhase;
  /** 0..1 over the whole request. */
  fraction: number;
  message?: string;
  epoch?: number;
  epochs?: number;
  step?: number;
  totalSteps?: number;
  loss?: number;
  learningRate?: number;
  imagesPerSecond?: number;
  etaSeconds?: number;
  /** Share of the batch assigned to each prototype, summing to 1. */
  prototypeUsage?: number[];
  /** Where the work runs: "webgpu (NVIDIA H200, Vulkan)", "cpu". */
  device?: string;
  /** Whether training is working (training only). */
  health?: TrainingHealth;
}

/** A training run's state, from signals it computes anyway (src/engine/swav/health.ts). */
export type HealthState = 'collapsing' | 'learning' | 'converged' | 'diverged';

/** A health reading at the end of an epoch, with the step it was taken at. */
export interface EpochHealth {
  step: number;
  health: TrainingHealth;
}

export interface TrainingHealth {
  state: HealthState;
  /** What to do about it, in a sentence. */
  advice: string;
  /** Epochs whose end the signals have seen. */
  epochsObserved: number;
  /** Prototypes that took any image in the last epoch (by the argmax of a global crop's scores), of `prototypes`. */
  prototypesUsed: number;
  prototypes: number;
  /** Entropy (nats) of the prototypes' shares of the last epoch; ln(prototypes) when even. */
  usageEntropy: number;
  /** Share of images whose cluster changed since the epoch before (absent before the second epoch). */
  changedShare?: number;
  /** Epochs in a row that looked stable (converged at 3). */
  stableEpochs: number;
  /** ln K: where the loss sits when the assignments carry no information (collapse). */
  lossReference: number;
  /** Whether the queue of past embeddings feeds Sinkhorn now. */
  queueActive: boolean;
}

/** How the states read to a person. */
export const healthStateLabels: Readonly<Record<HealthState, string>> = { collapsing: 'collapsing', learning: 'still learning', converged: 'converged', diverged: 'diverged' };

/** Why training ended. */
export type StopReason = 'converged' | 'time' | 'epochs' | 'cancelled';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export interface LogEvent {
  type: 'log';
  id?: number;
  level: LogLevel;
  message: string;
}

export interface TrainResult extends RanOn {
  kind: 'train';
  runDir: string;
  images: number;
  skipped: SkippedFile[];
  epochs: number;
  steps: number;
  finalLoss: number;
  imagesPerSecond: number;
  durationMs: number;
  cancelled: boolean;
  /** Why training ended: assignments stable, the time budget, the epoch budget, or a cancel. */
  stopReason: StopReason;
  /** The last health reading (absent for frozen-backbone runs). */
  health?: TrainingHealth;
  checkpointPath: string;
  indexPath?: string;
}

export interface IndexResult extends RanOn {
  kind: 'index';
  runDir: string;
  images: number;
  skipped: SkippedFile[];
  clusters: ClusterSummary[];
  /** The whole job's throughput: model setup, forward passes, assignment, PCA and writing the index. */
  imagesPerSecond: number;
  /** The forward passes' throughput alone (what a framework's own embedding benchmark times), where measured. */
  forwardImagesPerSecond?: number;
  durationMs: number;
  indexPath: string;
}

export interface NeighboursResult extends RanOn {
  kind: 'neighbours';
  query: string;
  cluster: number;
  /** How the neighbours were found: the exact scan, or the run's HNSW index (runs over 50,000 images). */
  search?: 'exact' | 'approximate';
  neighbours: Neighbour[];
}

/** Field names follow the CLI's documented JSON contract. */
export interface EvaluateResult extends RanOn {
  kind: 'evaluate';
  images: number;
  skipped: number;
  /** k-means on the L2-normalised backbone features, k = number of label folders (the reference's protocol). */
  nmi: number;
  ari: number;
  acc: number;
  /** k-means on the L2-normalised projections, the space where the prototypes and SwAV's objective live. */
  projection_nmi: number;
  projection_ari: number;
  projection_acc: number;
  /** The prototype assignment scored against the labels. */
  proto_nmi: number;
  proto_ari: number;
  proto_acc: number;
  /** Leave-one-out cosine kNN accuracy on backbone embeddings. */
  knn: number;
  /** The k used: 20, or fewer than the smallest class holds besides the query. */
  knn_k: number;
  clusters_used: number;
  /** k-means and kNN on the raw pixels of the same images, at the run's image size (when asked for). */
  pixels?: PixelBaseline;
}

export interface ClusteringScores {
  nmi: number;
  ari: number;
  acc: number;
  /** Leave-one-out cosine kNN accuracy (the same for both pixel variants: cosine ignores scale). */
  knn: number;
}

export interface PixelBaseline {
  imageSizePx: number;
  /** Pixels in [0, 1], as they are. */
  plain: ClusteringScores;
  /** Each image's pixel vector scaled to unit length. */
  normalised: ClusteringScores;
}

export interface ExplainResult extends RanOn {
  kind: 'explain';
  method: ExplainMethod;
  runDir: string;
  /** The explained image, absolute. */
  image: string;
  imageSizePx: number;
  /** The image's assigned prototype. */
  cluster: number;
  /** The most probable prototypes, best first. */
  topPrototypes: PrototypeProbability[];
  /** The nearest images of the run by backbone features, best first (the image itself excluded). */
  neighbours: Neighbour[];
  target: ExplainedTarget;
  heatmap: Heatmap;
  /** The map over the other image, for similarity targets. */
  pairHeatmap?: Heatmap;
  counterfactual?: CounterfactualSummary;
  /** Paths of the PNGs written, when the request named an `outDir`. */
  files?: ExplainImages;
  /** base64 PNGs, when the request asked for `inlinePngs`. */
  pngs?: ExplainImages;
  /** Time the method itself took. */
  durationMs: number;
}

export interface EvaluateExplanationsResult extends RanOn {
  kind: 'evaluate-explanations';
  runDir: string;
  images: number;
  pair: 'neighbour' | 'augmented';
  /** One row per method, then the random-map baseline. */
  rows: ExplanationScores[];
  durationMs: number;
}

/** One counterfactual method over the evaluated images. */
export interface CounterfactualScores {
  method: ExplainMethod;
  /** Share of images that landed in their target cluster. */
  validity: number;
  medianChangedPixelShare: number;
  p90ChangedPixelShare: number;
  medianL1Distance: number;
  medianDurationMs: number;
  /** Region and mask methods: median number of regions kept. */
  medianRegions?: number;
}

/** Deletion and insertion of the assigned cluster's probability in Grad-CAM's order against a random map's, image by image. */
export interface ClusterMapFaithfulness {
  /** How deleted pixels are filled: black, or ROAD's noisy linear imputation from the pixels kept. */
  removal: 'black' | 'road';
  gradCamDeletion: number;
  randomDeletion: number;
  gradCamInsertion: number;
  randomInsertion: number;
  /** Share of images where Grad-CAM's deletion AUC is below the random map's (higher is better). */
  deletionBelowRandom: number;
  /** Share of images where Grad-CAM's insertion AUC is above the random map's. */
  insertionAboveRandom: number;
}

export interface EvaluateCounterfactualsResult extends RanOn {
  kind: 'evaluate-counterfactuals';
  runDir: string;
  images: number;
  rows: CounterfactualScores[];
  gradCam: ClusterMapFaithfulness[];
  durationMs: number;
}

/** Acknowledges a cancel or shutdown request. */
export interface AckResult {
  kind: 'ack';
  request: 'cancel' | 'shutdown';
}

export type EngineResult =
  | TrainResult
  | IndexResult
  | NeighboursResult
  | EvaluateResult
  | ExplainResult
  | EvaluateExplanationsResult
  | EvaluateCounterfactualsResult
  | OverviewResult
  | ExportOnnxResult
  | LayoutResult
  | MapPointsResult
  | DuplicatesResult
  | OutliersResult
  | ExportAssignmentsResult
  | AckResult;

/** Requests that do work (as opposed to controlling the engine). */
export type WorkRequest = Exclude<EngineRequest, CancelRequest | ShutdownRequest>;

/** Which result each work request answers with. */
export interface ResultOf {
  train: TrainResult;
  index: IndexResult;
  neighbours: NeighboursResult;
  evaluate: EvaluateResult;
  explain: ExplainResult;
  'evaluate-explanations': EvaluateExplanationsResult;
  'evaluate-counterfactuals': EvaluateCounterfactualsResult;
  overview: OverviewResult;
  exportOnnx: ExportOnnxResult;
  layout: LayoutResult;
  mapPoints: MapPointsResult;
  duplicates: DuplicatesResult;
  outliers: OutliersResult;
  exportAssignments: ExportAssignmentsResult;
}

export interface LayoutResult {
  kind: 'layout';
  runDir: string;
  layout: 'umap';
  images: number;
  /** False when the run folder already held the layout. */
  computed: boolean;
  durationMs: number;
  path: string;
}

export interface MapPointsResult {
  kind: 'mapPoints';
  runDir: string;
  imagesDir: string;
  /** map-points.bin, absolute. */
  path: string;
  images: number;
  clusters: number;
  layouts: MapLayout[];
}

export interface DuplicateGroupSummary {
  paths: string[];
  imageIndices: number[];
  /** Every member has the same bytes. */
  exact: boolean;
  minSimilarity: number;
}

export interface DuplicatesResult {
  kind: 'duplicates';
  runDir: string;
  imagesDir: string;
  threshold: number;
  images: number;
  /** Groups of near-identical images, largest first. */
  groups: DuplicateGroupSummary[];
  durationMs: number;
}

export interface OutlierSummary {
  imageIndex: number;
  path: string;
  /** 1 − cosine similarity to the k-th nearest neighbour. */
  score: number;
  cluster: number;
}

export interface OutliersResult {
  kind: 'outliers';
  runDir: string;
  imagesDir: string;
  k: number;
  images: number;
  /** Most isolated first. */
  outliers: OutlierSummary[];
  durationMs: number;
}

export interface ExportAssignmentsResult {
  kind: 'exportAssignments';
  runDir: string;
  format: ExportFormat;
  outPath: string;
  rows: number;
  /** The columns written, in order. */
  columns: string[];
}

export interface OverviewResult {
  kind: 'overview';
  overview: RunOverview;
}

/** An exported ONNX model: input `images` NCHW in [0, 1]; outputs `embedding`, `prototype_scores`, `features`. */
export interface ExportOnnxResult {
  kind: 'exportOnnx';
  runDir: string;
  outPath: string;
  bytes: number;
  opset: number;
  imageSizePx: number;
  channels: number;
  featureDim: number;
  projectionDim: number;
  prototypes: number;
  checkpointStep: number;
  durationMs: number;
}

export interface ResultEvent {
  type: 'result';
  id: number;
  result: EngineResult;
}

export type ErrorCode =
  | 'BAD_REQUEST'
  | 'BAD_CONFIG'
  | 'NOT_FOUND'
  | 'NO_IMAGES'
  | 'NO_CHECKPOINT'
  | 'NO_INDEX'
  | 'BAD_CHECKPOINT'
  /**
   * A run folder's file (run.json, index.bin, neighbours.bin) that is damaged or was changed outside Cluster Lens:
   * a field out of range, sizes that disagree, a path leaving the run's images folder. The message names the file,
   * the field and the fix.
   */
  | 'BAD_RUN'
  /** An ONNX model that cannot be read or parsed. */
  | 'BAD_MODEL'
  /** An ONNX model that parses but uses an operator, shape or layout Cluster Lens cannot handle. */
  | 'UNSUPPORTED_MODEL'
  | 'DECODE_FAILED'
  | 'BACKEND_UNAVAILABLE'
  /** A native module (sharp, onnxruntime-node, usearch, webgpu) that cannot load on this platform. */
  | 'NATIVE_MODULE_UNAVAILABLE'
  | 'BUSY'
  /** The run folder is being written by another job (its .lock names the process and when it started). */
  | 'RUN_BUSY'
  /** A fresh train into a folder that already holds a run, without overwrite. */
  | 'RUN_EXISTS'
  /** A write failed because the disk or the quota is full; the message names the folder and what is intact. */
  | 'DISK_FULL'
  | 'CANCELLED'
  | 'ENGINE_CRASHED'
  | 'INTERNAL';

export interface ErrorEvent {
  type: 'error';
  /** The request that failed; absent for failures outside any request. */
  id?: number;
  code: ErrorCode;
  /** What went wrong and what to do, for the user. */
  message: string;
  /** Technical detail for the log. */
  detail?: string;
}

export interface ReadyEvent {
  type: 'ready';
  pid: number;
  version: string;
}

export type EngineEvent = ProgressEvent | LogEvent | ResultEvent | ErrorEvent | ReadyEvent;

export function isEngineRequest(value: unknown): value is EngineRequest {
  if (typeof value !== 'object' || value === null) return false;
  const message = value as { type?: unknown; id?: unknown };
  if (message.type === 'train' && !optionalBoolean((value as { overwrite?: unknown }).overwrite)) return false;
  return (
    typeof message.id === 'number' &&
    (message.type === 'train' ||
      message.type === 'cancel' ||
      message.type === 'index' ||
      message.type === 'neighbours' ||
      message.type === 'evaluate' ||
      message.type === 'explain' ||
      message.type === 'evaluate-explanations' ||
      message.type === 'evaluate-counterfactuals' ||
      message.type === 'overview' ||
      message.type === 'exportOnnx' ||
      message.type === 'layout' ||
      message.type === 'mapPoints' ||
      message.type === 'duplicates' ||
      message.type === 'outliers' ||
      message.type === 'exportAssignments' ||
      message.type === 'shutdown')
  );
}

function optionalBoolean(value: unknown): boolean {
  return value === undefined || typeof value === 'boolean';
}


/** Everything the cluster map and the gallery show about a run's index. */
export interface RunOverview {
  runDir: string;
  imagesDir: string;
  /** Image paths relative to imagesDir, in index order. */
  paths: string[];
  assignments: number[];
  /** Probability of the assigned prototype. */
  confidences: number[];
  labels: number[];
  labelNames: string[];
  clusters: ClusterSummary[];
  prototypes: number;
}
