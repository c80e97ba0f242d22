// What every training job shares, whatever trains (the whole network, or a head on a frozen backbone):
// decoding the folder with progress and named skips, and the result it reports.
import { constants as fsConstants, lstatSync, promises as fs } from 'node:fs';
import path from 'node:path';
import type { TrainOptions } from '../../protocol/options';
import type { StopReason, TrainingHealth, TrainResult } from '../../protocol/engine';
import type { MultiCropOptions } from '../data/augment';
import { loadImageSet, type ImageSet } from '../data/decode';
import type { ScanResult } from '../data/scan';
import { EngineError, isDiskFull } from '../errors';
import type { JobContext } from '../jobContext';
import { checkpointPath } from '../model/checkpoint';
import { runFiles, runPath, writeManifest } from '../runFolder';

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

/** A checkpoint's place in training: what a full disk leaves intact. */
export interface SavedCheckpoint {
  epoch: number;
  step: number;
}

/**
 * Before a training job scans anything: a fresh run may not replace one already in `runDir` (its run.json or
 * checkpoint) unless `overwrite` says so (RUN_EXISTS), and the run's log must be a plain file, not a link (BAD_RUN).
 * Call it holding the run's lock.
 */
export async function checkRunFolder(runDir: string, job: { resume?: boolean; overwrite?: boolean }, log: JobContext['log']): Promise<void> {
  await checkMetricsFile(runPath(runDir, 'metrics'));
  if (job.resume) return;
  const held = [runPath(runDir, 'manifest'), checkpointPath(runDir)].filter((file) => lstatSync(file, { throwIfNoEntry: false }) !== undefined);
  if (held.length === 0) return;
  const names = held.map((file) => path.basename(file)).join(' and ');
  if (!job.overwrite) {
    throw new EngineError(
      'RUN_EXISTS',
      `${runDir} already holds a run (${names}). Train into a new folder, continue this run with --resume, or replace it with --overwrite (its checkpoint, index and metrics are replaced when the new run saves its first checkpoint).`,
    );
  }
  log('info', `Overwriting the run in ${runDir}: its ${names}, index and metrics are replaced when the new run saves its first checkpoint.`);
}

/**
 * What a training job writes into its run folder, and when: nothing before the first checkpoint, so a run stopped
 * before it leaves no run.json claiming a run (and an overwritten run stays whole until then). The first save of a
 * fresh run removes the old run's files, writes the checkpoint, then run.json and the image list, and starts
 * metrics.jsonl over; later saves write the checkpoint and append to the log. A full disk is a DISK_FULL error that
 * names the folder and the last checkpoint left intact.
 */
export class RunFolderWriter {
  private saved = false;
  private intact: SavedCheckpoint | undefined;

  constructor(
    private readonly run: {
      runDir: string;
      imagesDir: string;
      options: TrainOptions;
      images: ImageSet;
      device: string;
      createdAt?: string;
      /** A new run (not a resumed one): its first save replaces whatever run was in the folder. */
      fresh: boolean;
      /** The checkpoint a resumed run started from: intact until this session saves. */
      resumedFrom?: SavedCheckpoint;
      /** Runs on an imported backbone cannot resume: a full disk's message says what to do instead. */
      resumable?: boolean;
      /** Files the checkpoint depends on (the backbone's copy), written just before the first checkpoint. */
      beforeFirstCheckpoint?: { file: string; write: () => Promise<void> };
    },
  ) {
    this.intact = run.resumedFrom;
  }

  get runDir(): string {
    return this.run.runDir;
  }

  /** Saves the checkpoint (`write` writes it to the path it is given) and appends `metrics` lines to the log. */
  async save(checkpoint: SavedCheckpoint & { write(file: string): Promise<void> }, metrics: string[]): Promise<void> {
    const { runDir, images } = this.run;
    const first = !this.saved;
    let writing = checkpointPath(runDir);
    try {
      if (first && this.run.fresh) {
        writing = `the previous run's files`;
        await removePreviousRun(runDir);
      }
      if (first && this.run.beforeFirstCheckpoint) {
        writing = this.run.beforeFirstCheckpoint.file;
        await this.run.beforeFirstCheckpoint.write();
      }
      writing = checkpointPath(runDir);
      await checkpoint.write(writing);
      if (first) {
        writing = runPath(runDir, 'manifest');
        await writeManifest(
          runDir,
          {
            format: 'cluster-lens-run',
            imagesDir: this.run.imagesDir,
            options: this.run.options,
            channels: images.channels,
            labelNames: images.labelNames,
            device: this.run.device,
            createdAt: this.run.createdAt ?? new Date().toISOString(),
            images: images.records.length,
            skipped: images.skipped,
          },
          images.records,
        );
      }
      this.intact = { epoch: checkpoint.epoch, step: checkpoint.step };
      this.saved = true;
      if (metrics.length || (first && this.run.fresh)) {
        writing = runPath(runDir, 'metrics');
        await writeMetrics(writing, metrics, first && this.run.fresh);
      }
    } catch (error) {
      if (isDiskFull(error)) throw this.diskFull(writing, error);
      throw error;
    }
  }

  private diskFull(file: string, error: unknown): EngineError {
    const { runDir, imagesDir } = this.run;
    const intact = this.intact;
    const next = !intact
      ? 'No checkpoint was saved yet: free some space and train again.'
      : this.run.resumable === false
        ? `The last checkpoint (epoch ${intact.epoch}, step ${intact.step}) is intact: free some space, then index it (cluster-lens index ${runDir}) or train again.`
        : `The last checkpoint (epoch ${intact.epoch}, step ${intact.step}) is intact: free some space, then continue it with cluster-lens train ${imagesDir} --out ${runDir} --resume.`;
    return new EngineError('DISK_FULL', `The disk is full: ${file} could not be written in ${runDir}, and training stopped. ${next}`, error instanceof EngineError ? (error.detail ?? error.message) : String(error));
  }
}

/** A full disk while a training job indexes its run: the checkpoint is saved, so say so and how to index it later. */
export function indexDiskFull(error: unknown, runDir: string, checkpoint: { epochs: number; steps: number }): unknown {
  if (!isDiskFull(error)) return error;
  return new EngineError(
    'DISK_FULL',
    `The disk is full: the index could not be written in ${runDir}. The checkpoint (epoch ${checkpoint.epochs}, step ${checkpoint.steps}) is intact: free some space, then index it with: cluster-lens index ${runDir}`,
    error instanceof EngineError ? (error.detail ?? error.message) : String(error),
  );
}

/** Everything a run derives from its checkpoint, and its manifest: a fresh run's first save removes the old run's. */
async function removePreviousRun(runDir: string): Promise<void> {
  const kept: (keyof typeof runFiles)[] = ['metrics']; // started over by the first save
  for (const key of Object.keys(runFiles) as (keyof typeof runFiles)[]) {
    if (!kept.includes(key)) await fs.rm(runPath(runDir, key), { force: true });
  }
}

/** The run's log must be a plain file: a link could point the log (and a reset) at a file outside the run. */
async function checkMetricsFile(file: string): Promise<void> {
  const stat = lstatSync(file, { throwIfNoEntry: false });
  if (stat && !stat.isFile()) throw notPlainLog(file, stat.isSymbolicLink() ? 'a symbolic link' : 'not a regular file');
}

function notPlainLog(file: string, what: string): EngineError {
  return new EngineError('BAD_RUN', `${file} is ${what}: Cluster Lens writes a run's training log only as a plain file in the run folder, never through a link. Delete ${file} (the file it points to is left alone) and train again.`);
}

/**
 * Appends `lines` to the run's log, or starts it over (`reset`), opened without following links (O_NOFOLLOW)
 * and never blocking on a FIFO; a failed append is cut back, so the log never ends in half a line.
 */
async function writeMetrics(file: string, lines: string[], reset: boolean): Promise<void> {
  await checkMetricsFile(file);
  const flags = fsConstants.O_WRONLY | fsConstants.O_CREAT | (reset ? fsConstants.O_TRUNC : fsConstants.O_APPEND) | (fsConstants.O_NOFOLLOW ?? 0) | (fsConstants.O_NONBLOCK ?? 0);
  let handle: fs.FileHandle;
  try {
    handle = await fs.open(file, flags, 0o644);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ELOOP' || code === 'EMLINK') throw notPlainLog(file, 'a symbolic link');
    if (code === 'ENXIO') throw notPlainLog(file, 'not a regular file');
    throw error;
  }
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) throw notPlainLog(file, 'not a regular file');
    if (lines.length === 0) return;
    try {
      await handle.write(lines.join('\n') + '\n');
    } catch (error) {
      await handle.truncate(stat.size).catch(() => undefined);
      throw error;
    }
  } finally {
    await handle.close();
  }
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
