// The train job on a frozen imported backbone: onnxruntime computes the features, the SwAV head and prototypes
// train on them (frozen/), then the run is indexed. The run folder keeps a copy of the ONNX file, so it survives
// the original moving.
import { createHash } from 'node:crypto';
import path from 'node:path';
import type { TrainResult } from '../../protocol/engine';
import { resolveTrainOptions } from '../config';
import type { MultiCropOptions } from '../data/augment';
import type { ImageSet } from '../data/decode';
import { scanImageFolder } from '../data/scan';
import { EngineError } from '../errors';
import { checkExplainable } from '../frozen/explainable';
import { bankViews, checkFeatureDim, embedWithBackbone } from '../frozen/frozenRun';
import { bankCropSource, computeFeatureBank, liveCropSource } from '../frozen/cropFeatures';
import { createHeadModel, trainHeadOnFeatures, type CropFeatureSource } from '../frozen/headTrainer';
import { OrtBackbone } from '../frozen/ortBackbone';
import { frozenBackboneFileName, frozenBackbonePath, sha256, type BackboneRecord } from '../frozen/backboneFile';
import { writeIndex } from '../index/indexer';
import type { JobContext } from '../jobContext';
import { checkpointPath, saveCheckpoint, type CheckpointHeader } from '../model/checkpoint';
import { disposeModel, type SwavModel } from '../model/model';
import { imagenetNormalization, resolveBackboneInput, type BackboneInput } from '../onnx/backboneInput';
import { readOnnxFile, type OnnxGraph } from '../onnx/graph';
import { OnnxModelError } from '../onnx/onnxError';
import { ranOnKind, useDevice } from '../runtime/device';
import { readManifest } from '../runFolder';
import { withRunLock } from '../runLock';
import { checkRunFolder, decodeTrainingImages, indexDiskFull, multiCropOptions, RunFolderWriter, trainResult } from '../swav/runSetup';
import { writeFileAtomic } from '../util/atomicFile';
import { createRandom } from '../util/random';
import type { TrainJob } from './train';

/** Above this, augmented views are embedded per step instead of once into a bank held in memory. */
const maxBankBytes = 1024 ** 3;

/**
 * Trains the SwAV head on a frozen ONNX backbone's features and leaves a run folder behind, as the trainer does,
 * holding the run folder's lock throughout (RUN_BUSY while another job writes it).
 */
export async function trainFrozenBackbone(job: TrainJob, context: JobContext): Promise<TrainResult> {
  const runDir = path.resolve(job.runDir);
  return withRunLock(runDir, 'train', context.log, async () => {
    if (!job.resume) await checkRunFolder(runDir, job, context.log);
    return trainFrozenLocked(job, context);
  });
}

async function trainFrozenLocked(job: TrainJob, context: JobContext): Promise<TrainResult> {
  const startedAt = Date.now();
  const runDir = path.resolve(job.runDir);
  const imagesDir = path.resolve(job.imagesDir);
  if (job.resume) {
    throw new EngineError('BAD_REQUEST', `Resuming is not supported for runs on an imported backbone (${runDir}). Train again without --resume: only the head trains, which is quick.`);
  }
  const source = job.options?.backbone;
  if (!source) throw new EngineError('BAD_REQUEST', 'A frozen-backbone run needs options.backbone, the path of an ONNX file.');
  const sourcePath = path.resolve(source);
  const device = await useDevice(job.options?.device, context.log);
  context.progress({ phase: 'scan', fraction: 0, message: `Opening ${sourcePath}` });
  const { bytes, graph } = await readOnnxFile(sourcePath);
  // ImageNet's mean and std for RGB backbones unless the run says none; grey backbones get [0, 1] pixels.
  const normalization = resolveTrainOptions({ backboneNormalization: job.options?.backboneNormalization }).backboneNormalization;
  const rgb = resolveBackboneInput(graph).channels === 3;
  const ort = await OrtBackbone.fromBytes(bytes, graph, rgb && normalization === 'imagenet' ? imagenetNormalization : {});
  let model: SwavModel | undefined;
  try {
    const { heightPx, widthPx } = ort.input;
    if (heightPx !== undefined && widthPx !== undefined && heightPx !== widthPx) {
      throw new OnnxModelError('unsupported', sourcePath, `The ONNX model ${sourcePath} takes ${heightPx}×${widthPx} images; Cluster Lens needs square ones.`);
    }
    const given = job.options?.imageSizePx;
    if (heightPx !== undefined && given !== undefined && given !== heightPx) {
      context.log('warn', `The ONNX model ${path.basename(sourcePath)} takes ${heightPx} px images: the images are resized to ${heightPx} px (imageSizePx ${given} does not apply to it).`);
    }
    const options = resolveTrainOptions({ ...job.options, backbone: sourcePath, ...(heightPx !== undefined ? { imageSizePx: heightPx } : {}) }, { gpu: false });
    context.log(
      'info',
      !rgb
        ? `The backbone takes grey images: [0, 1] pixels, no normalisation.`
        : normalization === 'imagenet'
          ? `Images are normalised with ImageNet's mean [${ort.input.mean.join(', ')}] and std [${ort.input.std.join(', ')}] for the backbone (backboneNormalization: imagenet; --backbone-normalization none or the setting clusterLens.backboneNormalization turns it off).`
          : `Images go to the backbone as [0, 1] pixels, without normalisation (backboneNormalization: none).`,
    );
    await warnIfNotExplainable(bytes, graph, ort.input, options.imageSizePx, context);

    context.progress({ phase: 'scan', fraction: 0, message: `Scanning ${imagesDir}` });
    const scan = await scanImageFolder(imagesDir, { signal: context.signal, followSymlinksOutside: options.followLinks === true });
    const images = await decodeTrainingImages(scan, { imageSizePx: options.imageSizePx, channels: ort.input.channels as 1 | 3 }, context);

    const record: BackboneRecord = { path: sourcePath, sha256: sha256(bytes), featureOutput: ort.input.featureOutput, inputMean: ort.input.mean, inputStd: ort.input.std, imageSizePx: options.imageSizePx };
    // The backbone's copy, the checkpoint and run.json are written at the first checkpoint, metrics.jsonl started over.
    const folder = new RunFolderWriter({
      runDir,
      imagesDir,
      options,
      images,
      device: device.label,
      fresh: true,
      resumable: false,
      beforeFirstCheckpoint: {
        file: frozenBackbonePath(runDir),
        write: async () => {
          // The bytes that were read and hashed, not the file again: it may have changed since.
          if (path.resolve(frozenBackbonePath(runDir)) !== sourcePath) await writeFileAtomic(frozenBackbonePath(runDir), bytes);
        },
      },
    });

    const crops = multiCropOptions(options);
    const cropSource = await featureSource(ort, images, crops, options, within(context, 0.05, 0.25, 0.05));
    context.log('info', `Frozen backbone ${path.basename(sourcePath)}: ${cropSource.featureDim} features; training the head on ${images.records.length} images`);
    model = createHeadModel(cropSource.featureDim, options, createRandom(options.seed), { channels: images.channels, inputMean: ort.input.mean, inputStd: ort.input.std });

    let metrics: string[] = [];
    const trainStartedAt = Date.now();
    const training: JobContext = {
      ...context,
      progress: (update) => {
        if (update.step !== undefined && update.loss !== undefined) {
          metrics.push(JSON.stringify({ step: update.step, epoch: (update.epoch ?? 1) - 1, loss: update.loss, learningRate: update.learningRate, imagesPerSecond: update.imagesPerSecond, elapsedMs: Date.now() - trainStartedAt }));
        }
        context.progress({ ...update, fraction: 0.25 + 0.65 * update.fraction });
      },
    };
    const outcome = await trainHeadOnFeatures(cropSource, options, training, {
      model,
      onEpochEnd: async (state) => {
        const header: CheckpointHeader = {
          format: 'cluster-lens-checkpoint',
          spec: state.model.spec,
          options,
          epoch: state.epoch,
          step: state.step,
          elapsedMs: Date.now() - trainStartedAt,
          randomState: 0,
          device: device.label,
          savedAt: new Date().toISOString(),
          backbone: record,
        };
        const lines = metrics;
        metrics = [];
        await folder.save({ epoch: state.epoch, step: state.step, write: (file) => saveCheckpoint(file, header, state.model, state.optimizer.exportState()) }, lines);
      },
    });
    outcome.optimizer.dispose();
    if (outcome.cancelled) context.log('info', `Training cancelled at step ${outcome.steps}; checkpoint saved.`);

    let indexPath: string | undefined;
    if (job.index !== false) {
      // Index even when cancelled, as the trainer does: the run stays explorable.
      const indexing = { ...within(context, 0.9, 0.98), signal: new AbortController().signal };
      const embedded = await embedWithBackbone(ort, model, images, indexing);
      indexPath = (await writeIndex(embedded, images, { runDir, checkpointStep: outcome.steps, temperature: options.temperature }, indexing).catch((error: unknown) => Promise.reject(indexDiskFull(error, runDir, outcome)))).indexPath;
    }
    return { ...trainResult({ runDir, images, startedAt, indexPath }, outcome), ...ranOnKind(ort.device) };
  } finally {
    if (model) disposeModel(model);
    await ort.dispose();
  }
}

/**
 * Augmented views once into a bank when it fits in memory (onnxruntime then runs a fixed number of times per
 * image, not once per crop and epoch); otherwise fresh crops embedded every step. When the bank would take more
 * than half the time budget (a ResNet-50 on a laptop's CPU), fewer views: down to once per image and crop scale
 * (one global and one local view; both global crops then share their features, and SwAV's swapped prediction
 * becomes self-labelling against the balanced codes).
 */
async function featureSource(ort: OrtBackbone, images: ImageSet, crops: MultiCropOptions, options: { epochs: number; minutes: number; seed: number }, context: JobContext): Promise<CropFeatureSource> {
  const sizePx = ort.input.heightPx ?? crops.globalSizePx;
  // The backbone's time per image, from one small batch (the first run also warms its session up).
  const probe = Math.min(8, images.records.length);
  const blank = new Float32Array(probe * sizePx * sizePx * images.channels);
  const featureDim = (await ort.features(blank, probe, sizePx, sizePx, images.channels)).length / probe;
  const startedAt = performance.now();
  await ort.features(blank, probe, sizePx, sizePx, images.channels);
  const secondsPerImage = (performance.now() - startedAt) / 1000 / probe;
  const { views, full } = bankViews({ ...options, localCrops: crops.localCrops, images: images.records.length, secondsPerImage });
  if (views !== full) {
    const minutesFor = (step: { global: number; local: number }) => Math.ceil(((step.global + step.local) * images.records.length * secondsPerImage) / 60);
    context.log(
      'info',
      `Backbone features: ${views.global} global and ${views.local} local view(s) per image${views.global === 1 ? ' (once per image and crop scale)' : ''}, ~${minutesFor(views)} min; the full bank of ${full.global + full.local} views would take ~${minutesFor(full)} min of the ${options.minutes}-minute budget.`,
    );
  }
  if ((views.global + views.local) * images.records.length * featureDim * 4 > maxBankBytes) return liveCropSource(ort, images, crops, featureDim);
  const bank = await computeFeatureBank(ort, images, crops, views, createRandom(options.seed * 7919 + 1), context);
  return bankCropSource(bank, crops.localCrops);
}

/** Building the gradient graph now tells the user early when Grad-CAM and counterfactuals will not work; features still come from onnxruntime. */
async function warnIfNotExplainable(bytes: Uint8Array, graph: OnnxGraph, input: BackboneInput, sizePx: number, context: JobContext): Promise<void> {
  try {
    await checkExplainable(bytes, graph, input, sizePx);
  } catch (error) {
    if (!(error instanceof OnnxModelError)) throw error;
    context.log('warn', `Grad-CAM and counterfactuals will not be available for this run: ${error.message}`);
  }
}

/** A context whose progress `fraction` (0..`full`) lands in [from, to] of the whole request. */
function within(context: JobContext, from: number, to: number, full = 1): JobContext {
  return { ...context, progress: (update) => context.progress({ ...update, fraction: from + ((to - from) * Math.min(update.fraction, full)) / full }) };
}

