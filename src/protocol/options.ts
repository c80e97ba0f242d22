// Run options and the vocabulary the engine, the host and the webviews share: devices, training
// options, image records, explanation methods, targets and the parts of their results.

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
  /**
   * Follow symbolic links that lead out of the images folder (a folder of links into a dataset store, say). Off:
   * they are skipped, each listed with its reason. Kept in the run, so its index and evaluation see the same images.
   */
  followLinks?: boolean;
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
