// The index and neighbours requests: rebuild a run's index, and find the images nearest to one, in or outside
// the index, through the engine's own network or a frozen imported backbone.
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { IndexResult, NeighboursResult } from '../../protocol/engine';
import { decodeImage, loadImageSet } from '../data/decode';
import { scanImageFolder } from '../data/scan';
import { EngineError } from '../errors';
import { describeWithBackbone, embedWithBackbone, openFrozenBackbone } from '../frozen/frozenRun';
import { buildIndex, writeIndex } from '../index/indexer';
import { searchNeighbours } from '../index/neighbourIndex';
import { cachedCheckpoint, cachedIndex, cachedNeighbourIndex } from '../index/runQueries';
import type { JobContext } from '../jobContext';
import { ownExplainable, scoreImagesOnDevice } from '../explain/onDevice';
import { readManifest } from '../runFolder';

/** Rebuilds a run's index from its checkpoint and its images folder. */
export async function indexRun(runDir: string, context: JobContext): Promise<IndexResult> {
  const resolved = path.resolve(runDir);
  const manifest = await readManifest(resolved);
  const checkpoint = await cachedCheckpoint(resolved);
  context.progress({ phase: 'scan', fraction: 0, message: `Scanning ${manifest.imagesDir}` });
  const scan = await scanImageFolder(manifest.imagesDir, { signal: context.signal });
  const images = await loadImageSet(scan, {
    imageSizePx: manifest.options.imageSizePx,
    channels: checkpoint.header.spec.channels as 1 | 3,
    signal: context.signal,
    onProgress: (done, total) => context.progress({ phase: 'decode', fraction: 0.5 * (done / total), message: `Decoding images ${done}/${total}` }),
  });
  const meta = { runDir: resolved, checkpointStep: checkpoint.header.step, temperature: manifest.options.temperature };
  const record = checkpoint.header.backbone;
  if (!record) return buildIndex(checkpoint.model, images, meta, context);
  // A frozen imported backbone: onnxruntime computes the features, the checkpoint's head the rest.
  const startedAt = Date.now();
  const backbone = await openFrozenBackbone(resolved, record);
  const embedded = await embedWithBackbone(backbone, checkpoint.model, images, { ...context, progress: (update) => context.progress({ ...update, fraction: 0.5 + 0.45 * update.fraction }) });
  return writeIndex(embedded, images, { ...meta, startedAt }, context);
}

/**
 * Nearest images by cosine similarity of backbone features; the query may be outside the index. Large runs answer
 * through their saved HNSW index; `exact` forces the exact scan.
 */
export async function findNeighbours(runDir: string, image: string, k: number, context: JobContext, options: { exact?: boolean } = {}): Promise<NeighboursResult> {
  const resolved = path.resolve(runDir);
  const index = await cachedIndex(resolved);
  const absolute = path.resolve(index.header.imagesDir, image);
  const relative = path.relative(index.header.imagesDir, absolute).split(path.sep).join('/');
  const position = index.header.records.findIndex((record) => record.path === relative);
  let query: Float32Array;
  let cluster: number;
  if (position >= 0) {
    query = index.features.data.slice(position * index.features.dims, (position + 1) * index.features.dims);
    cluster = index.assignments[position];
  } else {
    if (!existsSync(absolute)) throw new EngineError('NOT_FOUND', `The image ${absolute} does not exist. Pass a path to an image file.`);
    const checkpoint = await cachedCheckpoint(resolved);
    const spec = checkpoint.header.spec;
    const manifest = await readManifest(resolved);
    const pixels = await decodeImage(absolute, manifest.options.imageSizePx, spec.channels as 1 | 3);
    const record = checkpoint.header.backbone;
    if (record) {
      const described = await describeWithBackbone(await openFrozenBackbone(resolved, record), checkpoint.model, pixels, manifest.options.imageSizePx, spec.channels);
      query = described.features;
      cluster = described.cluster;
    } else {
      // The engine's own network: its forward graph on onnxruntime's device.
      const { features, scores } = await scoreImagesOnDevice(ownExplainable(checkpoint.model, manifest.options.temperature), Float32Array.from(pixels, (value) => value / 255), 1, manifest.options.imageSizePx);
      const norm = Math.max(Math.hypot(...features), 1e-12);
      query = features.map((value) => value / norm);
      cluster = scores.indexOf(Math.max(...scores));
    }
  }
  const approximate = options.exact ? undefined : (await cachedNeighbourIndex(resolved, context)).approximate;
  const { hits, search } = searchNeighbours(index.features, approximate, query, k, position >= 0 ? position : undefined);
  return {
    kind: 'neighbours',
    query: absolute,
    cluster,
    search,
    neighbours: hits.map((hit) => ({
      imageIndex: hit.index,
      path: index.header.records[hit.index].path,
      similarity: hit.similarity,
      cluster: index.assignments[hit.index],
    })),
  };
}

