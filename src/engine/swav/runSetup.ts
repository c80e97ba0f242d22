// What every training job shares, whatever trains (the whole network, or a head on a frozen backbone):
// decoding the folder with progress and named skips, and the result it reports.
import { promises as fs } from 'node:fs';
import type { TrainOptions } from '../../protocol/options';
import type { StopReason, TrainingHealth, TrainResult } from '../../protocol/engine';
import type { MultiCropOptions } from '../data/augment';
import { loadImageSet, type ImageSet } from '../data/decode';
import type { ScanResult } from '../data/scan';
import { EngineError } from '../errors';
import type { JobContext } from '../jobContext';
import { checkpointPath } from '../model/checkpoint';
import { writeManifest } from '../runFolder';

/** Decodes the scanned images for training; each skipped file is logged by name, and fewer than two is an error. */
export async function decodeTrainingImages(scan: ScanResult, options: { imageSizePx: number; channels: 1 | 3 | 'auto' }, context: JobContext): Promise<ImageSet> {
  const images = await loadImageSet(scan, {
    ...options,
    signal: context.signal,
    onProgress: (done, total) => context.progress({ phase: 'decode', fraction: 0.05 * (done / total), message: `Decoding images ${done}/${total}` }),
  });
  for (const skipped of images.skipped) context.log('warn', `Skipped ${skipped.path}: ${skipped.reason}`);
  if (images.records.length < 2) {
    throw new EngineError('NO_IMAGES', `Only ${images.records.length} usable image(s) in ${scan.root}; training needs at least 2. See the log for skipped files.`);
  }
  return images;
}

/** SwAV's multi-crop from the recipe: two global views, the local ones, and the paper's colour augmentations. */
export function multiCropOptions(options: TrainOptions): MultiCropOptions {
  return {
    globalCrops: 2,
    globalSizePx: options.imageSizePx,
    globalScale: options.globalCropScale,
    localCrops: options.localCrops,
    localSizePx: options.localCropSizePx,
    localScale: options.localCropScale,
    flipProbability: 0.5,
    colorJitter: 0.4,
    grayscaleProbability: 0.2,
  };
}

/** Creates the run folder and writes its manifest (run.json) and image list for these images and options. */
export async function startRunFolder(run: { runDir: string; imagesDir: string; options: TrainOptions; images: ImageSet; device: string; createdAt?: string }): Promise<void> {
  await fs.mkdir(run.runDir, { recursive: true });
  const { images } = run;
  await writeManifest(
    run.runDir,
    {
      format: 'cluster-lens-run',
      imagesDir: run.imagesDir,
      options: run.options,
      channels: images.channels,
      labelNames: images.labelNames,
      device: run.device,
      createdAt: run.createdAt ?? new Date().toISOString(),
      images: images.records.length,
      skipped: images.skipped,
    },
    images.records,
  );
}

export interface TrainOutcomeSummary {
  epochs: number;
  steps: number;
  finalLoss: number;
  imagesPerSecond: number;
  cancelled: boolean;
  /** Default: cancelled, else the epoch or time budget ran out. */
  stopReason?: StopReason;
  health?: TrainingHealth;
}

export function trainResult(
  run: { runDir: string; images: ImageSet; startedAt: number; indexPath?: string },
  outcome: TrainOutcomeSummary,
): TrainResult {
  return {
    kind: 'train',
    runDir: run.runDir,
    images: run.images.records.length,
    skipped: run.images.skipped,
    epochs: outcome.epochs,
    steps: outcome.steps,
    finalLoss: outcome.finalLoss,
    imagesPerSecond: outcome.imagesPerSecond,
    durationMs: Date.now() - run.startedAt,
    cancelled: outcome.cancelled,
    stopReason: outcome.stopReason ?? (outcome.cancelled ? 'cancelled' : 'epochs'),
    ...(outcome.health ? { health: outcome.health } : {}),
    checkpointPath: checkpointPath(run.runDir),
    indexPath: run.indexPath,
  };
}
