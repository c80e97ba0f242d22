// Every message between the extension host, the engine process and the webviews.
// One module of discriminated unions: the `type` field names the message.

export type BackendName = 'tensorflow' | 'webgpu' | 'wasm' | 'cpu';
export type BackendPreference = 'auto' | BackendName;

/** Options a caller may set for training; `src/engine/config.ts` holds the defaults. */
export interface TrainOptions {
  imageSizePx: number;
  prototypes: number;
  /** Stop after this many epochs… */
  epochs: number;
  /** …or after this many minutes, whichever comes first (0 = no time limit). */
  minutes: number;
  batchSize: number;
  /** Channels of the first stage; each later stage doubles it. */
  width: number;
  /** Basic blocks per stage, one entry per stage. */
  blocksPerStage: number[];
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
  backend: BackendPreference;
}

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
}

export interface EvaluateRequest {
  type: 'evaluate';
  id: number;
  runDir: string;
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
  | ShutdownRequest;

// ---------------------------------------------------------------- events

export type WorkPhase = 'scan' | 'decode' | 'train' | 'index' | 'evaluate';

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
}

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export interface LogEvent {
  type: 'log';
  id?: number;
  level: LogLevel;
  message: string;
}

export interface TrainResult {
  kind: 'train';
  runDir: string;
  backend: BackendName;
  images: number;
  skipped: SkippedFile[];
  epochs: number;
  steps: number;
  finalLoss: number;
  imagesPerSecond: number;
  durationMs: number;
  cancelled: boolean;
  checkpointPath: string;
  indexPath?: string;
}

export interface IndexResult {
  kind: 'index';
  runDir: string;
  backend: BackendName;
  images: number;
  skipped: SkippedFile[];
  clusters: ClusterSummary[];
  imagesPerSecond: number;
  durationMs: number;
  indexPath: string;
}

export interface NeighboursResult {
  kind: 'neighbours';
  backend: BackendName;
  query: string;
  cluster: number;
  neighbours: Neighbour[];
}

/** Field names follow the CLI's documented JSON contract. */
export interface EvaluateResult {
  kind: 'evaluate';
  backend: BackendName;
  images: number;
  skipped: number;
  /** k-means on backbone embeddings, k = number of label folders. */
  nmi: number;
  ari: number;
  acc: number;
  /** The prototype assignment scored against the labels. */
  proto_nmi: number;
  proto_ari: number;
  proto_acc: number;
  /** Leave-one-out cosine kNN accuracy on backbone embeddings. */
  knn: number;
  knn_k: number;
  clusters_used: number;
}

/** Acknowledges a cancel or shutdown request. */
export interface AckResult {
  kind: 'ack';
  request: 'cancel' | 'shutdown';
}

export type EngineResult = TrainResult | IndexResult | NeighboursResult | EvaluateResult | AckResult;

/** Requests that do work (as opposed to controlling the engine). */
export type WorkRequest = Exclude<EngineRequest, CancelRequest | ShutdownRequest>;

/** Which result each work request answers with. */
export interface ResultOf {
  train: TrainResult;
  index: IndexResult;
  neighbours: NeighboursResult;
  evaluate: EvaluateResult;
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
  | 'DECODE_FAILED'
  | 'BACKEND_UNAVAILABLE'
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
      message.type === 'shutdown')
  );
}
