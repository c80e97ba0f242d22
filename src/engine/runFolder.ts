import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import type { ImageRecord, SkippedFile, TrainOptions } from '../protocol/options';
import { EngineError } from './errors';
import { writeFileAtomic } from './util/atomicFile';

/** What a run folder says about itself: where its images came from and how it was trained. */
export interface RunManifest {
  format: 'cluster-lens-run';
  imagesDir: string;
  options: TrainOptions;
  channels: 1 | 3;
  labelNames: string[];
  /** Where the run trained ("webgpu (NVIDIA H200, Vulkan)", "cpu"); runs from before TensorFlow.js was retired name its backend instead. */
  device?: string;
  createdAt: string;
  images: number;
  skipped: SkippedFile[];
}

export const runFiles = {
  manifest: 'run.json',
  images: 'images.json',
  metrics: 'metrics.jsonl',
  index: 'index.bin',
  /** The exact k-nearest-neighbour graph of the index's features (duplicates, outliers, UMAP). */
  neighbourGraph: 'neighbours.bin',
  /** The HNSW index of the features of runs over 50,000 images (usearch's format), and what it was built from. */
  neighbourIndex: 'neighbours.usearch',
  neighbourIndexStamp: 'neighbours.usearch.json',
  umap: 'umap.bin',
  /** What the cluster map loads as one binary fetch: coordinates, colours' inputs and paths. */
  mapPoints: 'map-points.bin',
} as const;

export function runPath(runDir: string, file: keyof typeof runFiles): string {
  return path.join(runDir, runFiles[file]);
}

export async function writeManifest(runDir: string, manifest: RunManifest, records: ImageRecord[]): Promise<void> {
  await writeFileAtomic(runPath(runDir, 'images'), JSON.stringify(records));
  await writeFileAtomic(runPath(runDir, 'manifest'), JSON.stringify(manifest, null, 2));
}

export async function readManifest(runDir: string): Promise<RunManifest> {
  const file = runPath(runDir, 'manifest');
  if (!existsSync(runDir)) throw new EngineError('NOT_FOUND', `The run folder ${runDir} does not exist. Pass a folder made by "cluster-lens train".`);
  if (!existsSync(file)) throw new EngineError('NO_CHECKPOINT', `${runDir} is not a Cluster Lens run (no ${runFiles.manifest}). Train a model into it first.`);
  try {
    const manifest = JSON.parse(await fs.readFile(file, 'utf8')) as RunManifest;
    if (manifest.format !== 'cluster-lens-run') throw new Error('unknown format');
    return manifest;
  } catch (error) {
    throw new EngineError('BAD_CHECKPOINT', `${file} is damaged (${(error as Error).message}). Train the run again.`, String(error));
  }
}
