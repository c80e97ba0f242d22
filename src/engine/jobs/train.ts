// The train job: scans and decodes the folder, trains SwAV (swav/), then indexes the run (index/), leaving a run
// folder behind even when cancelled or out of time.
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { TrainOptions } from '../../protocol/options';
import type { TrainResult } from '../../protocol/engine';
import { resolveTrainOptions } from '../config';
import { scanImageFolder, typicalImageSizePx } from '../data/scan';
import { EngineError } from '../errors';
import { buildIndex } from '../index/indexer';
import type { JobContext } from '../jobContext';
import { checkpointPath, loadCheckpoint } from '../model/checkpoint';
import { ranOn, useDevice } from '../runtime/device';
import { loadOrt } from '../runtime/session';
import { readManifest, runPath, type RunManifest } from '../runFolder';
import { withRunLock } from '../runLock';
import { checkRunFolder, decodeTrainingImages, indexDiskFull, RunFolderWriter, trainResult } from '../swav/runSetup';
import { budgetText, SwavTrainer } from '../swav/trainer';

export interface TrainJob {
  imagesDir: string;
  runDir: string;
  options?: Partial<TrainOptions>;
  resume?: boolean;
  /** A fresh run may replace the run already in runDir (otherwise RUN_EXISTS). */
  overwrite?: boolean;
  /** Build the index after training (default true). */
  index?: boolean;
}

/**
 * Trains SwAV on a folder and leaves a run folder behind, even when cancelled or out of time. The job holds the
 * run folder's lock throughout (RUN_BUSY while another job writes it).
 */
export async function train(job: TrainJob, context: JobContext): Promise<TrainResult> {
  const runDir = path.resolve(job.runDir);
  const previous = job.resume ? await readManifest(runDir) : undefined;
  return withRunLock(runDir, job.resume ? 'train --resume' : 'train', context.log, async () => {
    await checkRunFolder(runDir, job, context.log);
    return trainLocked(job, runDir, previous, context);
  });
}

async function trainLocked(job: TrainJob, runDir: string, previous: RunManifest | undefined, context: JobContext): Promise<TrainResult> {
  const startedAt = Date.now();
  const imagesDir = path.resolve(job.imagesDir);
  const device = await useDevice(job.options?.device, context.log);
  // Every step runs on onnxruntime: without it, say so before any folder is scanned or written.
  loadOrt();
  const resumeFrom = job.resume ? await loadCheckpoint(checkpointPath(runDir)) : undefined;
  context.progress({ phase: 'scan', fraction: 0, message: `Scanning ${imagesDir}` });
  const scan = await scanImageFolder(imagesDir, { signal: context.signal, followSymlinksOutside: (previous?.options ?? job.options)?.followLinks === true });
  // A resumed run keeps its recipe; only the budget (epochs, minutes) and the device may change. A new one
  // fills the options it was not given with defaults for this device and these images.
  let options: TrainOptions;
  if (resumeFrom) {
    options = resolveTrainOptions({ ...resumeFrom.header.options, ...pick(job.options ?? {}, ['epochs', 'minutes', 'device']) });
  } else {
    const nativeImageSizePx = await typicalImageSizePx(scan.root, scan.files.map((file) => file.path));
    const gpu = device.device !== 'cpu' && device.software !== true;
    options = resolveTrainOptions(job.options, { gpu, nativeImageSizePx, imageCount: scan.files.length });
    const given = job.options ?? {};
    if (given.imageSizePx === undefined || given.batchSize === undefined) {
      const native = nativeImageSizePx !== undefined ? ` (the images are about ${nativeImageSizePx} px)` : '';
      const network = `${options.architecture} width ${options.width}, blocks ${options.blocksPerStage.join('-')}`;
      context.log('info', `Recipe for ${gpu ? 'a GPU' : 'the CPU'}: ${options.imageSizePx} px images${native}, batch ${options.batchSize}, ${network}, ${options.prototypes} prototypes`);
    }
    context.log('info', `Budget: ${budgetText(options)}`);
  }
  const images = await decodeTrainingImages(scan, { imageSizePx: options.imageSizePx, channels: resumeFrom ? (resumeFrom.header.spec.channels as 1 | 3) : 'auto' }, context);

  // run.json is written with the first checkpoint: a run stopped before it leaves none claiming a run.
  const folder = new RunFolderWriter({
    runDir,
    imagesDir,
    options,
    images,
    device: device.label,
    createdAt: previous?.createdAt,
    fresh: !resumeFrom,
    resumedFrom: resumeFrom && { epoch: resumeFrom.header.epoch, step: resumeFrom.header.step },
  });

  context.log('info', `Training steps run on onnxruntime (${device.label}), the crops too`);
  const trainer = new SwavTrainer(options, images, device, context, folder, resumeFrom);
  try {
    const outcome = await trainer.run();
    let indexPath: string | undefined;
    if (job.index !== false) {
      // A run cancelled while training still gets its index (a few seconds for most folders); a cancel that comes
      // during indexing (minutes at a million images, with the neighbour index) stops it, and the checkpoint stays.
      const indexing = new AbortController();
      const stopIndexing = () => indexing.abort();
      if (!context.signal.aborted) context.signal.addEventListener('abort', stopIndexing, { once: true });
      try {
        const index = await buildIndex(trainer.model, images, { runDir, checkpointStep: outcome.steps }, { ...context, signal: indexing.signal });
        indexPath = index.indexPath;
      } catch (error) {
        if (!(error instanceof EngineError && error.code === 'CANCELLED')) throw indexDiskFull(error, runDir, outcome);
        outcome.cancelled = true;
        // Cancelled while the HNSW neighbour index was building: index.bin is whole, and queries use the exact scan.
        const written = runPath(runDir, 'index');
        if (existsSync(written)) indexPath = written;
        context.log(
          'info',
          indexPath
            ? 'Neighbour index cancelled; the run is indexed and neighbour queries use the exact scan.'
            : `Indexing cancelled; the trained checkpoint is kept. Index it later with: cluster-lens index ${runDir}`,
        );
      } finally {
        context.signal.removeEventListener('abort', stopIndexing);
      }
    }
    return { ...trainResult({ runDir, images, startedAt, indexPath }, outcome), ...ranOn(device) };
  } finally {
    trainer.dispose();
  }
}

function pick<T extends object, K extends keyof T>(source: T, keys: K[]): Partial<T> {
  return Object.fromEntries(keys.filter((key) => source[key] !== undefined).map((key) => [key, source[key]])) as unknown as Partial<T>;
}
