// The index and neighbours requests: rebuild a run's index, and find the images nearest to one, in or outside
// the index, through the engine's own network or a frozen imported backbone.
import { existsSync, promises as fs } from 'node:fs';
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
import { readManifest, resolveRequestImage, runPath } from '../runFolder';
import { readArchiveHeader } from '../util/archiveHeader';

/** Rebuilds a run's index from its checkpoint and its images folder. */
export async function indexRun(runDir: string, context: JobContext): Promise<IndexResult> {
  const resolved = path.resolve(runDir);
  const manifest = await readManifest(resolved);
  await refuseOtherImages(resolved, manifest.imagesDir);
  const checkpoint = await cachedCheckpoint(resolved);
  context.progress({ phase: 'scan', fraction: 0, message: `Scanning ${manifest.imagesDir}` });
  const scan = await scanImageFolder(manifest.imagesDir, { signal: context.signal, followSymlinksOutside: manifest.options.followLinks === true });
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

async function sameFolder(a: string, b: string): Promise<boolean> {
  if (path.resolve(a) === path.resolve(b)) return true;
  const real = async (dir: string) => fs.realpath(dir).catch(() => path.resolve(dir));
  return (await real(a)) === (await real(b));
}

/**
 * BAD_RUN, before anything is written, where the run's index.bin was built from another images folder than the one
 * run.json names: indexing would replace a good index with one of other images. An index that cannot be read is
 * rebuilt (that is its fix).
 */
async function refuseOtherImages(runDir: string, imagesDir: string): Promise<void> {
  const file = runPath(runDir, 'index');
  if (!existsSync(file)) return;
  let indexed: unknown;
  try {
    indexed = (await readArchiveHeader<{ imagesDir?: unknown }>(file))?.imagesDir;
  } catch {
    return;
  }
  if (typeof indexed !== 'string' || (await sameFolder(indexed, imagesDir))) return;
  const manifestFile = runPath(runDir, 'manifest');
  throw new EngineError(
    'BAD_RUN',
    `${file} indexes the images in ${indexed}, but ${manifestFile} says the run's images are in ${imagesDir}; indexing would replace it with an index of other images, so nothing was changed. ` +
      `If the images moved to ${imagesDir}, delete ${file} and index again; otherwise set "imagesDir" in ${manifestFile} back to ${indexed}.`,
  );
}

/**
 * Nearest images by cosine similarity of backbone features; the query may be outside the index. Large runs answer
 * through their saved HNSW index; `exact` forces the exact scan.
 */
export async function findNeighbours(runDir: string, image: string, k: number, context: JobContext, options: { exact?: boolean } = {}): Promise<NeighboursResult> {
  const resolved = path.resolve(runDir);
  const index = await cachedIndex(resolved);
  const absolute = resolveRequestImage(index.header.imagesDir, image);
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

