// UMAP layout of a run with umap-js, fed the run's own exact neighbour graph (no second neighbour search),
// seeded, with progress and cancellation between epochs.
import { UMAP } from 'umap-js';
import type { JobContext } from '../jobContext';
import { throwIfCancelled, yieldToEventLoop } from '../jobContext';
import type { NeighbourGraph } from './ann';

export interface UmapOptions {
  /** Neighbours per point, the point itself included (umap-learn's convention). */
  neighbours: number;
  minDistance: number;
  epochs: number;
  seed: number;
}

export const umapDefaults: UmapOptions = { neighbours: 15, minDistance: 0.1, epochs: 200, seed: 0 };

/** mulberry32: a small seeded generator, so the same run and seed give the same layout. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** N × 2 coordinates, interleaved x, y. */
export async function umapLayout(graph: NeighbourGraph, options: Partial<UmapOptions>, context: JobContext, fractionRange: [number, number] = [0, 1]): Promise<Float32Array> {
  const settings = { ...umapDefaults, ...options };
  const rows = graph.indices.length / graph.k;
  const neighbours = Math.max(2, Math.min(settings.neighbours, graph.k + 1, rows));
  // umap-js wants the point itself first, at distance 0, then its neighbours by cosine distance.
  const knnIndices: number[][] = new Array(rows);
  const knnDistances: number[][] = new Array(rows);
  for (let row = 0; row < rows; row++) {
    const indices = [row];
    const distances = [0];
    for (let j = 0; j < neighbours - 1; j++) {
      const neighbour = graph.indices[row * graph.k + j];
      indices.push(neighbour < 0 ? row : neighbour);
      distances.push(neighbour < 0 ? 0 : Math.max(0, 1 - graph.similarities[row * graph.k + j]));
    }
    knnIndices[row] = indices;
    knnDistances[row] = distances;
  }
  const umap = new UMAP({ nNeighbors: neighbours, minDist: settings.minDistance, nEpochs: settings.epochs, nComponents: 2, random: seededRandom(settings.seed) });
  umap.setPrecomputedKNN(knnIndices, knnDistances);
  const span = fractionRange[1] - fractionRange[0];
  context.progress({ phase: 'layout', fraction: fractionRange[0], message: 'UMAP: fuzzy neighbour graph' });
  await yieldToEventLoop();
  // With precomputed neighbours umap-js reads only the number of rows from its input.
  const epochs = umap.initializeFit(Array.from({ length: rows }, () => []));
  for (let epoch = 0; epoch < epochs; epoch++) {
    umap.step();
    if (epoch % 5 === 4 || epoch === epochs - 1) {
      throwIfCancelled(context.signal);
      context.progress({ phase: 'layout', fraction: fractionRange[0] + span * ((0.1 + (0.9 * (epoch + 1)) / epochs)), message: `UMAP epoch ${epoch + 1}/${epochs}` });
      await yieldToEventLoop();
    }
  }
  const embedding = umap.getEmbedding();
  const coordinates = new Float32Array(rows * 2);
  embedding.forEach((point, row) => {
    coordinates[2 * row] = point[0];
    coordinates[2 * row + 1] = point[1];
  });
  return coordinates;
}
