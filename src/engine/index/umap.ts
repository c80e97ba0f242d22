// UMAP layout of a run with umap-js, fed the run's own neighbour graph (no second neighbour search), seeded, with
// progress and cancellation between epochs.
//
// umap-js 1.4.0 (pinned) builds its fuzzy neighbour graph in sparse matrices keyed by "row:col" strings, and a search
// graph for transform() that a layout never uses: at 70,000 images those took 48 of the ~150 s. Its epochs walk
// arrays of 2-element arrays. Here the fuzzy graph is built with numeric keys (the library's own smoothKNNDistance,
// then A + Aᵀ − A∘Aᵀ) and the epochs run over typed arrays with the library's arithmetic and random draws in the same
// order, so the layout is the one umap-js would give (tests compare them); umap-js still fits a and b, initialises
// the embedding and schedules the samples.
import { UMAP } from 'umap-js';
import { SparseMatrix } from 'umap-js/dist/matrix';
import type { JobContext } from '../jobContext';
import { throwIfCancelled, yieldToEventLoop } from '../jobContext';
import type { NeighbourGraph } from '../analysis/curation';

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
  random: () => number;
  optimizationState: {
    head: number[];
    tail: number[];
    headEmbedding: number[][];
    epochsPerSample: number[];
    epochOfNextSample: number[];
    epochOfNextNegativeSample: number[];
    epochsPerNegativeSample: number[];
    initialAlpha: number;
    gamma: number;
    a: number;
    b: number;
    nEpochs: number;
    nVertices: number;
  };
}

/** umap-js's optimizeLayoutStep (2-D, the embedding moving at both ends of an edge) over typed arrays. */
export class LayoutEpochs {
  readonly epochs: number;
  private epoch = 0;
  private readonly embedding: Float64Array;
  private readonly head: Int32Array;
  private readonly tail: Int32Array;
  private readonly epochsPerSample: Float64Array;
  private readonly epochOfNextSample: Float64Array;
  private readonly epochOfNextNegativeSample: Float64Array;
  private readonly epochsPerNegativeSample: Float64Array;
  private readonly state: UmapInternals['optimizationState'];
  private readonly random: () => number;

  /** From a umap-js instance after initializeFit: its schedule, a and b, starting embedding and random generator. */
  constructor(umap: UMAP) {
    const internals = umap as unknown as UmapInternals;
    const state = internals.optimizationState;
    this.state = state;
    this.random = internals.random;
    this.epochs = state.nEpochs;
    this.embedding = new Float64Array(state.headEmbedding.length * 2);
    state.headEmbedding.forEach((point, row) => {
      this.embedding[2 * row] = point[0];
      this.embedding[2 * row + 1] = point[1];
    });
    this.head = Int32Array.from(state.head);
    this.tail = Int32Array.from(state.tail);
    this.epochsPerSample = Float64Array.from(state.epochsPerSample);
    this.epochOfNextSample = Float64Array.from(state.epochOfNextSample);
    this.epochOfNextNegativeSample = Float64Array.from(state.epochOfNextNegativeSample);
    this.epochsPerNegativeSample = Float64Array.from(state.epochsPerNegativeSample);
  }

  /** One epoch; returns the number of epochs done. */
  step(): number {
    const n = this.epoch;
    if (n >= this.epochs) return n;
    const { embedding, head, tail, epochsPerSample, epochOfNextSample, epochOfNextNegativeSample, epochsPerNegativeSample, random } = this;
    const { a, b, gamma, nVertices, initialAlpha, nEpochs } = this.state;
    const alpha = initialAlpha * (1 - Math.max(0, n - 1) / nEpochs);
    const clip = (value: number) => (value > 4 ? 4 : value < -4 ? -4 : value);
    for (let i = 0; i < epochsPerSample.length; i++) {
      if (epochOfNextSample[i] > n) continue;
      const j = head[i];
      const k = tail[i];
      const dx = embedding[2 * j] - embedding[2 * k];
      const dy = embedding[2 * j + 1] - embedding[2 * k + 1];
      const distSquared = dx * dx + dy * dy;
      let gradCoeff = 0;
      if (distSquared > 0) {
        gradCoeff = -2.0 * a * b * Math.pow(distSquared, b - 1.0);
        gradCoeff /= a * Math.pow(distSquared, b) + 1.0;
      }
      const gradX = clip(gradCoeff * dx);
      const gradY = clip(gradCoeff * dy);
      embedding[2 * j] += gradX * alpha;
      embedding[2 * k] += -gradX * alpha;
      embedding[2 * j + 1] += gradY * alpha;
      embedding[2 * k + 1] += -gradY * alpha;
      epochOfNextSample[i] += epochsPerSample[i];
      const negativeSamples = Math.floor((n - epochOfNextNegativeSample[i]) / epochsPerNegativeSample[i]);
      for (let p = 0; p < negativeSamples; p++) {
        const other = Math.floor(random() * nVertices);
        const awayX = embedding[2 * j] - embedding[2 * other];
        const awayY = embedding[2 * j + 1] - embedding[2 * other + 1];
        const otherDistSquared = awayX * awayX + awayY * awayY;
        let repulsion = 0.0;
        if (otherDistSquared > 0.0) {
          repulsion = 2.0 * gamma * b;
          repulsion /= (0.001 + otherDistSquared) * (a * Math.pow(otherDistSquared, b) + 1);
        } else if (j === other) {
          continue;
        }
        embedding[2 * j] += (repulsion > 0.0 ? clip(repulsion * awayX) : 4.0) * alpha;
        embedding[2 * j + 1] += (repulsion > 0.0 ? clip(repulsion * awayY) : 4.0) * alpha;
      }
      epochOfNextNegativeSample[i] += negativeSamples * epochsPerNegativeSample[i];
    }
    this.epoch = n + 1;
    return this.epoch;
  }

  /** N × 2 coordinates, interleaved x, y. */
  coordinates(): Float32Array {
    return Float32Array.from(this.embedding);
  }
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
  umap.initializeFit(Array.from({ length: rows }, () => []));
  throwIfCancelled(context.signal);
  const layout = new LayoutEpochs(umap);
  const epochs = layout.epochs;
  for (let epoch = 0; epoch < epochs; epoch++) {
    layout.step();
    if (epoch % 5 === 4 || epoch === epochs - 1) {
      throwIfCancelled(context.signal);
      context.progress({ phase: 'layout', fraction: fractionRange[0] + span * ((0.1 + (0.9 * (epoch + 1)) / epochs)), message: `UMAP epoch ${epoch + 1}/${epochs}` });
      await yieldToEventLoop();
    }
  }
  return layout.coordinates();
}
