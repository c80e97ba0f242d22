// UMAP layout of a run with umap-js, fed the run's own neighbour graph (no second neighbour search), seeded, with
// progress and cancellation between epochs.
//
// umap-js 1.4.0 (pinned) builds its fuzzy neighbour graph in sparse matrices keyed by "row:col" strings, and a search
// graph for transform() that a layout never uses: at 70,000 images those took 48 of the ~150 s. The fuzzy graph is
// built here instead, with the same arithmetic (the library's own smoothKNNDistance, then A + Aᵀ − A∘Aᵀ), so the
// layout is the one umap-js would give; the epochs stay the library's.
import { UMAP } from 'umap-js';
import { SparseMatrix } from 'umap-js/dist/matrix';
import type { JobContext } from '../jobContext';
import { throwIfCancelled, yieldToEventLoop } from '../jobContext';
import type { NeighbourGraph } from './ann';

export interface UmapOptions {
  /** Neighbours per point, the point itself included (umap-learn's convention). */
  neighbours: number;
  minDistance: number;
  /** Optimisation epochs; undefined follows umap-learn's rule (referenceEpochs). */
  epochs?: number;
  seed: number;
}

export const umapDefaults: UmapOptions = { neighbours: 15, minDistance: 0.1, seed: 0 };

/** umap-learn's default: 500 epochs up to 10,000 points, 200 above (more points give more updates per epoch). */
export function referenceEpochs(rows: number): number {
  return rows <= 10_000 ? 500 : 200;
}

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

/** The umap-js internals a layout replaces or calls (private in its typings; the version is pinned in package.json). */
interface UmapInternals {
  knnIndices: number[][];
  knnDistances: number[][];
  localConnectivity: number;
  smoothKNNDistance(distances: number[][], k: number, localConnectivity: number): { sigmas: number[]; rhos: number[] };
  fuzzySimplicialSet(X: unknown[], nNeighbors: number, setOpMixRatio: number): SparseMatrix;
  makeSearchGraph(X: unknown[]): SparseMatrix;
}

/**
 * The fuzzy union of the neighbour graph's membership strengths, as umap-js's fuzzySimplicialSet computes it
 * (set-operation mix ratio 1): entries at every (i, j) of A ∪ Aᵀ with value (a + aᵀ) − a·aᵀ, in a numeric-keyed map.
 */
export function fuzzyUnion(knnIndices: number[][], knnDistances: number[][], sigmas: number[], rhos: number[]): SparseMatrix {
  const rows = knnIndices.length;
  // Keys row·N + col stay exact integers up to N ≈ 9·10⁷.
  const membership = new Map<number, number>();
  for (let i = 0; i < rows; i++) {
    const indices = knnIndices[i];
    const distances = knnDistances[i];
    for (let j = 0; j < indices.length; j++) {
      const neighbour = indices[j];
      if (neighbour === -1) continue;
      const excess = distances[j] - rhos[i];
      const value = neighbour === i ? 0 : excess <= 0 ? 1 : Math.exp(-(excess / sigmas[i]));
      membership.set(i * rows + neighbour, value);
    }
  }
  const entryRows: number[] = [];
  const entryCols: number[] = [];
  const values: number[] = [];
  for (const [key, value] of membership) {
    const row = Math.floor(key / rows);
    const col = key - row * rows;
    const transposedKey = col * rows + row;
    const transposed = membership.get(transposedKey);
    entryRows.push(row);
    entryCols.push(col);
    values.push(value + (transposed ?? 0) - value * (transposed ?? 0));
    // An edge only one side lists: its mirror entry carries the same strength.
    if (transposed === undefined) {
      entryRows.push(col);
      entryCols.push(row);
      values.push(value);
    }
  }
  return new SparseMatrix(entryRows, entryCols, values, [rows, rows]);
}

/** A umap-js instance fed a precomputed neighbour graph, with the fast fuzzy graph and no transform() search graph. */
export function umapWithNeighbours(knnIndices: number[][], knnDistances: number[][], settings: { neighbours: number; minDistance: number; epochs: number; seed: number }): UMAP {
  const umap = new UMAP({ nNeighbors: settings.neighbours, minDist: settings.minDistance, nEpochs: settings.epochs, nComponents: 2, random: seededRandom(settings.seed) });
  umap.setPrecomputedKNN(knnIndices, knnDistances);
  const internals = umap as unknown as UmapInternals;
  internals.fuzzySimplicialSet = (_X, nNeighbors) => {
    const { sigmas, rhos } = internals.smoothKNNDistance(internals.knnDistances, nNeighbors, internals.localConnectivity);
    return fuzzyUnion(internals.knnIndices, internals.knnDistances, sigmas, rhos);
  };
  internals.makeSearchGraph = () => new SparseMatrix([], [], [], [0, 0]);
  return umap;
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
  const umap = umapWithNeighbours(knnIndices, knnDistances, { ...settings, neighbours, epochs: settings.epochs ?? referenceEpochs(rows) });
  const span = fractionRange[1] - fractionRange[0];
  context.progress({ phase: 'layout', fraction: fractionRange[0], message: 'UMAP: fuzzy neighbour graph' });
  await yieldToEventLoop();
  // With precomputed neighbours umap-js reads only the number of rows from its input.
  const epochs = umap.initializeFit(Array.from({ length: rows }, () => []));
  throwIfCancelled(context.signal);
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
