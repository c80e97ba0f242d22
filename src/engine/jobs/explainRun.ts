// A run opened for explaining: its index, its network as graphs, its image size, and its images as the model sees them.
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { Neighbour, PrototypeProbability } from '../../protocol/options';
import { decodeImage } from '../data/decode';
import { EngineError } from '../errors';
import type { RunIndex } from '../index/indexer';
import { cachedCheckpoint, cachedIndex, cachedNeighbourIndex } from '../index/runQueries';
import type { ApproximateIndex } from '../index/ann';
import { searchNeighbours } from '../index/neighbourIndex';
import type { JobContext } from '../jobContext';
import { readManifest, resolveRequestImage } from '../runFolder';
import type { Donor, ExplainableModel, Pixels } from '../explain/explainer';
import { backboneOptions } from '../frozen/frozenRun';
import { importedGraphs } from '../frozen/explainable';
import { readFrozenBackbone, type BackboneRecord } from '../frozen/backboneFile';
import { resolveBackboneInput } from '../onnx/backboneInput';
import type { SwavModel } from '../model/model';
import { ownExplainable, scoreImagesOnDevice } from '../explain/onDevice';
import { weightsOf } from '../model/model';
import { softmaxRows } from '../explain/scorer';

export interface ExplainableRun {
  runDir: string;
  index: RunIndex;
  /** The run's saved HNSW index (runs over 50,000 images), for neighbour queries. */
  approximate?: ApproximateIndex;
  net: ExplainableModel;
  imageSizePx: number;
  channels: 1 | 3;
  cropScale: [number, number];
}

/** Opens a run: index first (NOT_FOUND, NO_INDEX), then the checkpoint. The caller disposes it. */
export async function openRun(runDir: string, context: JobContext): Promise<ExplainableRun> {
  const resolved = path.resolve(runDir);
  const index = await cachedIndex(resolved);
  const { approximate } = await cachedNeighbourIndex(resolved, context);
  const manifest = await readManifest(resolved);
  const checkpoint = await cachedCheckpoint(resolved);
  const record = checkpoint.header.backbone;
  // A frozen imported backbone explains through graphs built from its ONNX graph.
  const net = record ? await frozenExplainable(resolved, record, checkpoint.model, manifest.options.temperature) : ownExplainable(checkpoint.model, manifest.options.temperature);
  return {
    runDir: resolved,
    index,
    approximate,
    net,
    imageSizePx: manifest.options.imageSizePx,
    channels: checkpoint.header.spec.channels as 1 | 3,
    cropScale: manifest.options.globalCropScale,
  };
}

/**
 * An image path as given (absolute: any image the user chose; relative: under the run's images folder, and
 * BAD_REQUEST where it leads outside it), and its row in the index, or -1.
 */
export function locateImage(run: ExplainableRun, image: string): { absolute: string; position: number } {
  const absolute = resolveRequestImage(run.index.header.imagesDir, image);
  const relative = path.relative(run.index.header.imagesDir, absolute).split(path.sep).join('/');
  return { absolute, position: run.index.header.records.findIndex((record) => record.path === relative) };
}

/** Decodes an image as the model sees it: S·S·C values in [0, 1]. NOT_FOUND or DECODE_FAILED when it cannot. */
export async function loadImage(run: ExplainableRun, absolute: string): Promise<Pixels> {
  if (!existsSync(absolute)) throw new EngineError('NOT_FOUND', `The image ${absolute} does not exist. Pass a path to an image file.`);
  const bytes = await decodeImage(absolute, run.imageSizePx, run.channels);
  return { pixels: Float32Array.from(bytes, (value) => value / 255), sizePx: run.imageSizePx, channels: run.channels };
}

export interface ImageSummary {
  cluster: number;
  probabilities: Float32Array;
  scores: Float32Array;
  /** L2-normalised backbone features, comparable with the index's. */
  features: Float32Array;
}

/** The image's cluster, prototype scores and probabilities, and normalised features, from one forward pass. */
export async function describeImage(net: ExplainableModel, image: Pixels): Promise<ImageSummary> {
  const { features, scores } = await scoreImagesOnDevice(net, image.pixels, 1, image.sizePx);
  const probabilities = softmaxRows(scores, net.prototypes, net.temperature);
  const norm = Math.max(Math.hypot(...features), 1e-12);
  const cluster = scores.indexOf(Math.max(...scores));
  return { features: features.map((value) => value / norm), scores, probabilities, cluster };
}

/** The `count` most probable prototypes, best first. */
export function topPrototypes(probabilities: Float32Array, scores: Float32Array, count: number): PrototypeProbability[] {
  return Array.from(probabilities, (probability, prototype) => ({ prototype, probability, score: scores[prototype] }))
    .sort((a, b) => b.probability - a.probability)
    .slice(0, count);
}

/** The run's images nearest to `features`, best first, without the image's own row (through the HNSW index where the run has one). */
export function nearestImages(run: ExplainableRun, features: Float32Array, k: number, exclude: number): Neighbour[] {
  const { hits } = searchNeighbours(run.index.features, run.approximate, features, k, exclude >= 0 ? exclude : undefined);
  return hits.map((hit) => ({
    imageIndex: hit.index,
    path: run.index.header.records[hit.index].path,
    similarity: hit.similarity,
    cluster: run.index.assignments[hit.index],
  }));
}

/** The most probable prototype other than `cluster` among those the index uses; any other prototype when none is. */
export function nearestOtherCluster(run: ExplainableRun, probabilities: Float32Array, cluster: number): number {
  const used = new Set(run.index.assignments);
  let best = -1;
  for (const onlyUsed of [true, false]) {
    probabilities.forEach((probability, prototype) => {
      if (prototype === cluster || (onlyUsed && !used.has(prototype))) return;
      if (best < 0 || probability > probabilities[best]) best = prototype;
    });
    if (best >= 0) break;
  }
  return best;
}

/** At most this many donors: the bound, and what a round of the region search can score at once. */
export const maxDonors = 20;

/**
 * The members of `cluster` nearest to `features` (by cosine of backbone features), best first, without the
 * image's own row, loaded as the model sees them. BAD_REQUEST when the index gives the cluster no member.
 */
export async function clusterDonors(run: ExplainableRun, features: Float32Array, cluster: number, count: number, exclude: number): Promise<Donor[]> {
  const { data, rows, dims } = run.index.features;
  const members: { row: number; similarity: number }[] = [];
  for (let row = 0; row < rows; row++) {
    if (row === exclude || run.index.assignments[row] !== cluster) continue;
    let dot = 0;
    for (let t = 0; t < dims; t++) dot += features[t] * data[row * dims + t];
    members.push({ row, similarity: dot });
  }
  if (members.length === 0) {
    const used = new Set(run.index.assignments);
    if (used.size === 1) {
      throw new EngineError(
        'BAD_REQUEST',
        `All of this run's images are in cluster ${[...used][0]}, so a counterfactual has no other cluster to borrow from. Train longer or with more images until the run uses several clusters, or use the counterfactual-pixel method.`,
      );
    }
    throw new EngineError(
      'BAD_REQUEST',
      `Cluster ${cluster} has no images in this run's index, so a counterfactual has nothing to borrow from. Pick a cluster that has members (the cluster map lists them), or use the counterfactual-pixel method.`,
    );
  }
  members.sort((a, b) => b.similarity - a.similarity);
  const donors: Donor[] = [];
  for (const { row, similarity } of members.slice(0, Math.max(1, Math.min(count, maxDonors)))) {
    const relative = run.index.header.records[row].path;
    const { pixels } = await loadImage(run, path.join(run.index.header.imagesDir, relative));
    donors.push({ imageIndex: row, path: relative, similarity, cluster, pixels });
  }
  return donors;
}

/** The run's backbone with its head, for the explanation methods: its graphs, built from the ONNX graph. */
export async function frozenExplainable(runDir: string, record: BackboneRecord, model: SwavModel, temperature: number): Promise<ExplainableModel> {
  const { bytes, graph } = await readFrozenBackbone(runDir, record);
  const input = resolveBackboneInput(graph, backboneOptions(record));
  return { prototypes: model.spec.prototypes, temperature, graphs: importedGraphs(bytes, graph, input, model, () => weightsOf(model)) };
}
