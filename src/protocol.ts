// Every message between the extension host, the engine process and the webviews.
// One module of discriminated unions: the `type` field names the message.

/** TensorFlow.js backends: the light tensor work (augmentation, Adam, explanations) and the `tfjs` training runtime. */
export type BackendName = 'tensorflow' | 'wasm' | 'cpu';
export type BackendPreference = 'auto' | BackendName;
export type TrainingRuntime = 'onnxruntime' | 'tfjs';
export type TrainingRuntimePreference = 'auto' | TrainingRuntime;

/** Where the heavy computation runs: onnxruntime's WebGPU or CUDA provider, or its CPU kernels. */
export type DeviceKind = 'webgpu' | 'cuda' | 'cpu';
/** `auto`: a hardware GPU when there is one, else the CPU; `gpu`: a GPU or an error (software adapters too). */
export type DevicePreference = 'auto' | 'gpu' | 'cpu';

/** The device a job ran on, as every result and log line names it. */
export interface DeviceInfo {
  device: DeviceKind;
  /** The GPU's name, when there is one: "NVIDIA H200", "llvmpipe (Mesa 25.0.7)". */
  adapter?: string;
  /** The adapter emulates a GPU on the CPU (llvmpipe, lavapipe, SwiftShader). */
  software?: boolean;
  /** "webgpu (NVIDIA H200, Vulkan)", "cpu". */
  label: string;
  /** Rungs of the ladder that could not be used, and why. */
  skipped: { device: DeviceKind; reason: string }[];
  warning?: string;
}

/** Fields that name the device in a result (the CLI's --json contract). */
export interface RanOn {
  device?: DeviceKind;
  adapter?: string;
}

/** Options a caller may set for training; `src/engine/config.ts` holds the defaults. */
export interface TrainOptions {
  imageSizePx: number;
  prototypes: number;
  /** Stop after this many epochs (0 = no epoch cap)… */
  epochs: number;
  /** …or after this many minutes, whichever comes first (0 = no time limit; the default follows the folder's size and the device). */
  minutes: number;
  /** …or earlier, once the assignments are stable and the loss has plateaued (see TrainingHealth); off by default when `epochs` is given. */
  stopWhenConverged: boolean;
  batchSize: number;
  /** Channels of the first stage; each later stage doubles it. */
  width: number;
  /** Basic blocks per stage, one entry per stage. */
  blocksPerStage: number[];
  /** `resnet` (stem, blocks with shortcuts) or `plain` (conv-conv blocks, no stem or shortcuts, as the PyTorch reference). */
  architecture: 'resnet' | 'plain';
  projectionHiddenDim: number;
  projectionDim: number;
  localCrops: number;
  localCropSizePx: number;
  globalCropScale: [number, number];
  localCropScale: [number, number];
  learningRate: number;
  finalLearningRate: number;
  warmupEpochs: number;
  weightDecay: number;
  temperature: number;
  sinkhornEpsilon: number;
  sinkhornIterations: number;
  freezePrototypesSteps: number;
  /** Queue of past projections used by Sinkhorn for small batches (0 = off). */
  queueLength: number;
  queueStartEpoch: number;
  seed: number;
  /** Where training runs (see DevicePreference); the CLI's --device, the setting clusterLens.device. */
  device: DevicePreference;
  /** Expert override: the TensorFlow.js backend for the light tensor work. */
  backend: BackendPreference;
  /**
   * Expert override: what computes a training step's forward and backward pass: `onnxruntime` (one ONNX graph
   * per step, on the chosen device), `tfjs` (the tfjs backend, on the CPU), or `auto`: onnxruntime when it loads.
   */
  trainingRuntime: TrainingRuntimePreference;
  /**
   * An ONNX image backbone (absolute path) to use frozen: onnxruntime computes its features and only the
   * SwAV head and prototypes train. Absent: the engine trains its own ResNet.
   */
  backbone?: string;
  /**
   * How images are normalised for an imported RGB backbone: `imagenet` (torchvision's mean and std, the default:
   * what ImageNet-trained exports expect) or `none` ([0, 1] pixels). Grey backbones always get [0, 1].
   */
  backboneNormalization?: BackboneNormalization;
}

export type BackboneNormalization = 'imagenet' | 'none';

export interface SkippedFile {
  path: string;
  reason: string;
}

export interface ImageRecord {
  /** Path relative to the images folder, with forward slashes. */
  path: string;
  /** Index into the run's label list, or -1 when the folder has no labels. */
  label: number;
}

export interface ClusterSummary {
  cluster: number;
  size: number;
  /** Indices of the images nearest the cluster's prototype, best first. */
  samples: number[];
  meanConfidence: number;
  /** Most common label and its share, when labels exist. */
  majorityLabel?: string;
  purity?: number;
}

export interface Neighbour {
  imageIndex: number;
  path: string;
  similarity: number;
  cluster: number;
}

/** Every explanation method the engine knows; `src/engine/explain/methods.ts` maps each to its module. */
export const explainMethods = [
  'gradcam',
  'gradcam++',
  'layercam',
  'counterfactual',
  'counterfactual-mask',
  'counterfactual-pixel',
  'conditional-occlusion',
  'context-agnostic-occlusion',
  'pairwise-occlusion',
  'interaction-cam-mean',
  'interaction-cam-max',
  'input-x-gradient',
  'smoothgrad',
  'averaged-transforms',
  'pixel-invariance',
  'random',
  'attention-rollout',
] as const;

export type ExplainMethod = (typeof explainMethods)[number];

/**
 * The scalar an explanation explains. Cluster targets: the assigned prototype's score, or a chosen one's.
 * Similarity targets: the cosine between the image's backbone features and another image's.
 */
export type ExplainTarget =
  | { kind: 'assigned' }
  | { kind: 'prototype'; prototype: number }
  /** The run's `rank`-th nearest image to this one (1 = nearest, the default). */
  | { kind: 'neighbour'; rank?: number }
  /** Another image, by path (absolute, or relative to the run's images folder). */
  | { kind: 'image'; image: string }
  /** A random-resized, flipped, colour-jittered view of the image itself. */
  | { kind: 'augmented'; seed?: number };

/** Method settings a caller may set; `src/engine/explain/options.ts` holds the defaults. */
export interface ExplainOptions {
  counterfactualSteps: number;
  counterfactualLearningRate: number;
  /** λ of λ·MSE(x', x). */
  counterfactualMseWeight: number;
  /** λ_tv of λ_tv·TV(x'). */
  counterfactualTvWeight: number;
  /** Weight of ‖x' − x‖₂. */
  counterfactualL2Weight: number;
  /** Stop once p(target) exceeds every other prototype's probability by this much. */
  counterfactualMargin: number;
  /** Region and mask counterfactuals: the image is cut into this many cells per side. */
  counterfactualGridCells: number;
  /** Region and mask counterfactuals: how many of the target cluster's nearest members to borrow from (at most 20). */
  counterfactualDonors: number;
  /** Region counterfactual: give up after swapping this many cells. */
  counterfactualMaxRegions: number;
  /**
   * Region counterfactual: the search's time budget in ms (0: none). Timed on the unedited image, a slow network
   * (an imported ResNet-50 on the CPU) borrows from fewer donors, on a coarser grid, with fewer candidates a round.
   */
  counterfactualBudgetMs: number;
  /** Set by the engine: which of the grid and donor count the caller chose (the budget leaves those alone). */
  counterfactualGiven?: { gridCells: boolean; donors: boolean };
  /** Mask counterfactual: optimisation steps of the coarse mask. */
  counterfactualMaskSteps: number;
  /** Side of the occluding square (0: a quarter of the image). */
  occlusionPatchPx: number;
  /** Step between patches (0: a sixteenth of the image, at least 1). */
  occlusionStridePx: number;
  /** Random erasures for pairwise occlusion. */
  pairwiseErasures: number;
  smoothGradSamples: number;
  /** Noise σ as a share of the image's value range. */
  smoothGradNoise: number;
  averagedTransformViews: number;
  averagedTransformSteps: number;
  pixelInvarianceViews: number;
  /** Images per forward pass for batched methods and metrics. */
  batchSize: number;
  /** Side of the PNGs written (0: at least 224 px, a whole multiple of the image size). */
  displaySizePx: number;
  /** Heatmap opacity in overlay.png. */
  overlayOpacity: number;
}

export interface PrototypeProbability {
  prototype: number;
  /** Softmax of the prototype scores at the training temperature. */
  probability: number;
  /** Cosine between the embedding and the prototype. */
  score: number;
}

/** A map over the model's input image, row-major, values in [0, 1] (1 = most important). */
export interface Heatmap {
  widthPx: number;
  heightPx: number;
  values: number[];
}

/** The scalar that was explained, resolved. */
export type ExplainedTarget =
  | { kind: 'prototype'; prototype: number; assigned: boolean; score: number; probability: number }
  | { kind: 'similarity'; pair: 'neighbour' | 'image' | 'augmented'; pairImage?: string; similarity: number };

/** An image of the target cluster that a region or mask counterfactual borrowed from. */
export interface CounterfactualDonor extends Neighbour {
  /** The donor as the model sees it: a base64 PNG (inlinePngs) … */
  png?: string;
  /** … or the PNG's path (outDir). */
  file?: string;
}

/** A rectangle of the image, in model pixels, replaced by the same rectangle of donor `donor`. */
export interface CounterfactualRegion {
  donor: number;
  xPx: number;
  yPx: number;
  widthPx: number;
  heightPx: number;
}

/** How a counterfactual edits: swapped regions of donors, a blended donor mask, or free pixel optimisation. */
export type CounterfactualKind = 'region' | 'mask' | 'pixel';

export interface CounterfactualSummary {
  kind: CounterfactualKind;
  originalCluster: number;
  /** The probability of the original cluster before the edit. */
  originalClusterProbability: number;
  targetCluster: number;
  /** The cluster of the edited image. */
  newCluster: number;
  /** Did the assignment change to the target? */
  valid: boolean;
  originalTargetProbability: number;
  targetProbability: number;
  topPrototypes: PrototypeProbability[];
  /** Region and mask counterfactuals: the images borrowed from, nearest first. */
  donors?: CounterfactualDonor[];
  /** Region counterfactuals: the cells swapped in (after pruning); mask counterfactuals: the cells the mask covers. */
  regions?: CounterfactualRegion[];
  /** Σ|x' − x| over every value. */
  l1Distance: number;
  /** ‖x' − x‖₂ over every value. */
  l2Distance: number;
  meanAbsoluteChange: number;
  /** Share of pixels where some channel moved by more than 0.05. */
  changedPixelShare: number;
  /** Pixel: Adam steps; region: greedy rounds (one batched scoring each, pruning not counted); mask: mask steps. */
  steps: number;
  /** Pixel: stopped early because the target held with the margin; region and mask: reached the target. */
  converged: boolean;
  durationMs: number;
  /** Region counterfactuals: the grid, donors and candidates a round the search used, fitted to its time budget. */
  search?: CounterfactualSearchPlan;
}

export interface CounterfactualSearchPlan {
  gridCells: number;
  donors: number;
  /** The most (cell, donor) candidates a round scored. */
  candidatesPerRound: number;
  /** The unedited image's scoring time per image computed. */
  msPerImage: number;
  budgetMs: number;
  /** Whether the budget cut the grid, the donors or the candidates. */
  reduced: boolean;
  /** The search ran past twice its budget and stopped before reaching the target. */
  stopped?: boolean;
}

/** PNGs of an explanation, as file paths or as base64 data; which exist depends on the method. */
export interface ExplainImages {
  /** The image as the model sees it (resized and centre-cropped). */
  original?: string;
  heatmap?: string;
  overlay?: string;
  pairOriginal?: string;
  pairHeatmap?: string;
  pairOverlay?: string;
  counterfactual?: string;
  diff?: string;
}

/** One method's faithfulness figures, averaged over the evaluated images. */
export interface ExplanationScores {
  method: ExplainMethod;
  /** Insertion AUC, both images at once (SI, higher is better). */
  simultaneousInsertion: number;
  /** Deletion AUC, both images at once (SD, lower is better). */
  simultaneousDeletion: number;
  /** Insertion AUC, one image against the other intact (CI). */
  conditionalInsertion: number;
  /** Deletion AUC, one image against the other intact (CD). */
  conditionalDeletion: number;
  /** Average drop with both images masked by their maps (SAD, lower is better). */
  simultaneousAverageDrop: number;
  /** Share of images whose similarity rose when masked (SIC, higher is better). */
  simultaneousIncrease: number;
  conditionalAverageDrop: number;
  conditionalIncrease: number;
  /** Largest relative change of the map under small uniform input noise (MS, lower is better). */
  maxSensitivity: number;
  /** Cosine between the map of a cropped/flipped image and the cropped/flipped map (CGC, higher is better). */
  consistencyCosine: number;
  /** CGC's contrastive loss over the evaluated images (lower is better; needs at least 2 images). */
  consistencyLoss: number;
  durationMsPerImage: number;
}

// ---------------------------------------------------------------- requests

export interface TrainRequest {
  type: 'train';
  id: number;
  imagesDir: string;
  runDir: string;
  options?: Partial<TrainOptions>;
  /** Continue from the run folder's checkpoint. */
  resume?: boolean;
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

// ---------------------------------------------------------------- events

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
  backend: BackendName;
  /** What ran the training steps (absent for frozen-backbone runs, whose head trains on tfjs). */
  trainingRuntime?: TrainingRuntime;
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
  backend: BackendName;
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
  backend: BackendName;
  query: string;
  cluster: number;
  /** How the neighbours were found: the exact scan, or the run's HNSW index (runs over 50,000 images). */
  search?: 'exact' | 'approximate';
  neighbours: Neighbour[];
}

/** Field names follow the CLI's documented JSON contract. */
export interface EvaluateResult extends RanOn {
  kind: 'evaluate';
  backend: BackendName;
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
  backend: BackendName;
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
  backend: BackendName;
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
  backend: BackendName;
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
  /** An ONNX model that cannot be read or parsed. */
  | 'BAD_MODEL'
  /** An ONNX model that parses but uses an operator, shape or layout Cluster Lens cannot handle. */
  | 'UNSUPPORTED_MODEL'
  | 'DECODE_FAILED'
  | 'BACKEND_UNAVAILABLE'
  /** A native module (sharp, onnxruntime-node, usearch, webgpu) that cannot load on this platform. */
  | 'NATIVE_MODULE_UNAVAILABLE'
  | 'BUSY'
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

// ---------------------------------------------------------------- webviews

/** One point of the loss curve, as written to metrics.jsonl. */
export interface TrainingPoint {
  step: number;
  loss: number;
  learningRate: number;
  imagesPerSecond: number;
}

/** Host → training dashboard. */
export type ToDashboard =
  | { type: 'dashboard.reset'; runName: string; backend?: BackendName; history: TrainingPoint[]; /** The images folder's name, shown in the header. */ folder?: string }
  | { type: 'dashboard.progress'; event: ProgressEvent; /** What the header says now: the phase and its detail. */ headline?: string }
  | {
      type: 'dashboard.finished';
      summary: string;
      failed: boolean;
      /** Every step of the run (from its metrics.jsonl): progress events are sampled and may miss the last steps. */
      history?: TrainingPoint[];
      /** Epochs completed. */
      epochs?: number;
      /** The health reading at each epoch's end (from metrics.jsonl), so a run opened later shows its state. */
      healthHistory?: EpochHealth[];
    };

/** The commands a panel's buttons may run; the host runs nothing else a webview asks for. */
export const webviewCommands = ['clusterLens.train', 'clusterLens.openRun', 'clusterLens.showClusterMap', 'clusterLens.showDashboard'] as const;
export type WebviewCommand = (typeof webviewCommands)[number];

/** Any webview → host. */
export type FromWebview =
  | { type: 'webview.ready' }
  | { type: 'webview.openImage'; path: string }
  | { type: 'webview.explainImage'; path: string }
  | { type: 'webview.command'; command: WebviewCommand };

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

/** The cluster map's layouts: PCA of the projections, or UMAP of the features' neighbour graph. */
export type MapLayout = 'pca' | 'umap';
export type MapColouring = 'cluster' | 'label' | 'confidence' | 'outlier';

/** The first bytes of map-points.bin. */
export const mapPointsMagic = 'CLMP';

/** One typed array of map-points.bin; `offset` counts from the first byte after the header's padding. */
export interface MapPointsArray {
  name: string;
  dtype: 'float32' | 'int32' | 'uint8';
  offset: number;
  length: number;
}

/**
 * The JSON header of map-points.bin: "CLMP" | uint32 header bytes | header | zero padding to 8 | arrays.
 * Arrays: one per layout (float32 x, y interleaved), `cluster` and `label` (int32, −1: none), `confidence`,
 * `outlier` when known (float32), `paths` (UTF-8, NUL-separated, relative to the images folder).
 */
export interface MapPointsHeader {
  count: number;
  layouts: MapLayout[];
  labelNames: string[];
  prototypes: number;
  arrays: MapPointsArray[];
}

/**
 * Host → cluster map. `imageBase` is the webview URI of imagesDir; thumbnails are imageBase + '/' + path.
 * `pointsUrl` is the webview URI of map-points.bin, fetched as an ArrayBuffer.
 */
export type ToClusterMap =
  | { type: 'map.points'; pointsUrl: string; imageBase: string; runName: string; clusters: number; layout?: MapLayout }
  | { type: 'map.layoutProgress'; message: string; fraction: number }
  | { type: 'map.layoutFailed'; message: string };

/** Cluster map → host, besides the common FromWebview messages. */
export type FromClusterMap =
  | FromWebview
  | { type: 'map.selection'; imageIndices: number[] }
  /** Compute a layout the file does not hold yet (UMAP). */
  | { type: 'map.computeLayout'; layout: MapLayout }
  /** The lasso's images: copy their absolute paths, or save them as a file list. */
  | { type: 'map.copyPaths'; paths: string[] }
  | { type: 'map.savePaths'; paths: string[] };

/** Host → the Clusters side panel. */
export type ToGallery =
  | { type: 'gallery.data'; overview: RunOverview; imageBase: string }
  | { type: 'gallery.neighbours'; query: string; cluster: number; neighbours: Neighbour[]; search?: NeighboursResult['search'] }
  | { type: 'gallery.duplicates'; result: DuplicatesResult }
  | { type: 'gallery.outliers'; result: OutliersResult }
  | { type: 'gallery.curationFailed'; message: string }
  | { type: 'gallery.empty'; message: string };

/** The Clusters side panel → host, besides the common FromWebview messages. */
export type FromGallery = FromWebview | { type: 'gallery.findDuplicates' } | { type: 'gallery.findOutliers' };

/** Host → the explain panel. Images arrive as base64 PNGs in the results (`inlinePngs`). */
export type ToExplainPanel =
  | { type: 'explain.loading'; runDir: string; image: string; imageName: string }
  | {
      type: 'explain.gradcam';
      result: ExplainResult;
      prototypes: number;
      imageBase: string;
      /** False when the image was not part of the run's training: it was embedded on the fly and placed among the run's clusters. */
      inRun?: boolean;
      /** Images per cluster in the run's index: an empty cluster cannot lend regions, so it is not offered as a target. */
      clusterSizes?: number[];
      runName?: string;
    }
  | { type: 'explain.counterfactual'; result: ExplainResult }
  /** A counterfactual search under way (fraction 0–1), or cancelled. */
  | { type: 'explain.progress'; fraction: number; message: string }
  | { type: 'explain.cancelled' }
  | { type: 'explain.error'; stage: 'gradcam' | 'counterfactual'; message: string };

/** The methods the explain panel offers for its counterfactual. */
export type CounterfactualMethod = Extract<ExplainMethod, 'counterfactual' | 'counterfactual-mask' | 'counterfactual-pixel'>;

/** Explain panel → host, besides the common FromWebview messages. */
export type FromExplainPanel =
  | FromWebview
  | { type: 'explain.counterfactualTarget'; cluster: number; method?: CounterfactualMethod }
  | { type: 'explain.cancel' };

/** What the explain panel keeps across reloads: enough for the host to explain the same image again. */
export interface ExplainPanelState {
  opacity: number;
  runDir?: string;
  image?: string;
}
