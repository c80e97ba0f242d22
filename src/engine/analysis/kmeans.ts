// Seeded k-means: greedy k-means++ seeding, Lloyd iterations, best of several restarts by inertia.

import { createRandom, Random } from '../util/random';
import { assertMatrix, createMatrix, Matrix, multiplyTransposed, rowSquaredNorms } from './matrix';

export interface KMeansOptions {
  /** Independent seedings; the one with the lowest inertia wins. */
  restarts?: number;
  maxIterations?: number;
  /** Stop when the summed squared centroid shift falls below this share of the data's mean per-dimension variance (as sklearn). */
  tolerance?: number;
  seed?: number;
}

export interface KMeansResult {
  assignments: Int32Array;
  centroids: Matrix;
  /** Sum of squared distances from each point to its centroid. */
  inertia: number;
  /** Lloyd iterations of the winning restart. */
  iterations: number;
}

export function kMeans(points: Matrix, k: number, options: KMeansOptions = {}): KMeansResult {
  assertMatrix(points, 'points');
  const restarts = Math.max(1, Math.floor(options.restarts ?? 4));
  const maxIterations = Math.max(1, Math.floor(options.maxIterations ?? 100));
  const tolerance = options.tolerance ?? 1e-4;
  const random = createRandom(options.seed ?? 0);
  if (!Number.isInteger(k) || k < 1 || k > points.rows) {
    throw new Error(`k-means needs 1 ≤ k ≤ ${points.rows} points, got k = ${k}.`);
  }
  const context: Context = {
    points,
    k,
    pointNorms: rowSquaredNorms(points),
    shiftTolerance: tolerance * meanVariance(points),
  };
  let best: KMeansResult | undefined;
  for (let restart = 0; restart < restarts; restart++) {
    const result = lloyd(context, seedCentroids(context, random), maxIterations);
    if (best === undefined || result.inertia < best.inertia) best = result;
  }
  const winner = best as KMeansResult;
  // Distances from the product trick lose digits to cancellation; the reported inertia is summed directly.
  return { ...winner, inertia: exactInertia(points, winner.centroids, winner.assignments) };
}

interface Context {
  points: Matrix;
  k: number;
  pointNorms: Float64Array;
  /** Multiplies centroids by the points: centroids · pointsᵀ, k × N. */
  shiftTolerance: number;
}

function meanVariance(points: Matrix): number {
  const { rows, dims, data } = points;
  if (rows === 0 || dims === 0) return 0;
  const sums = new Float64Array(dims);
  const squares = new Float64Array(dims);
  for (let row = 0; row < rows; row++) {
    for (let d = 0, offset = row * dims; d < dims; d++, offset++) {
      sums[d] += data[offset];
      squares[d] += data[offset] * data[offset];
    }
  }
  let total = 0;
  for (let d = 0; d < dims; d++) total += Math.max(0, squares[d] / rows - (sums[d] / rows) ** 2);
  return total / dims;
}

/** ‖x − c‖² = ‖x‖² − 2 x·c + ‖c‖² for every centroid row against every point, clamped at 0 against rounding. */
function squaredDistances(context: Context, centroids: Matrix): Float32Array {
  const distances = multiplyTransposed(centroids, context.points);
  const count = context.points.rows;
  const centroidNorms = rowSquaredNorms(centroids);
  for (let c = 0; c < centroids.rows; c++) {
    const base = c * count;
    for (let i = 0; i < count; i++) {
      distances[base + i] = Math.max(0, context.pointNorms[i] + centroidNorms[c] - 2 * distances[base + i]);
    }
  }
  return distances;
}

function copyRow(from: Matrix, row: number, to: Matrix, toRow: number): void {
  to.data.set(from.data.subarray(row * from.dims, (row + 1) * from.dims), toRow * to.dims);
}

/** Greedy k-means++ (as sklearn): each new centre is the best of a few D²-sampled candidates. */
function seedCentroids(context: Context, random: Random): Matrix {
  const { points, k } = context;
  const count = points.rows;
  const trials = 2 + Math.floor(Math.log(k));
  const centroids = createMatrix(k, points.dims);
  copyRow(points, random.int(count), centroids, 0);
  const closest = Float64Array.from(squaredDistances(context, { data: centroids.data.subarray(0, points.dims), rows: 1, dims: points.dims }));
  const cumulative = new Float64Array(count);
  const candidates = createMatrix(trials, points.dims);
  for (let c = 1; c < k; c++) {
    let potential = 0;
    for (let i = 0; i < count; i++) cumulative[i] = potential += closest[i];
    for (let trial = 0; trial < trials; trial++) {
      // Sampling proportional to D² by bisection on the running sum; all-duplicate data falls back to uniform.
      let chosen = random.int(count);
      if (potential > 0) {
        const target = random.next() * potential;
        let low = 0;
        let high = count - 1;
        while (low < high) {
          const middle = (low + high) >> 1;
          if (cumulative[middle] > target) high = middle;
          else low = middle + 1;
        }
        chosen = low;
      }
      copyRow(points, chosen, candidates, trial);
    }
    const distances = squaredDistances(context, candidates);
    let bestTrial = 0;
    let bestPotential = Infinity;
    for (let trial = 0; trial < trials; trial++) {
      let trialPotential = 0;
      for (let i = 0, offset = trial * count; i < count; i++, offset++) trialPotential += Math.min(closest[i], distances[offset]);
      if (trialPotential < bestPotential) {
        bestPotential = trialPotential;
        bestTrial = trial;
      }
    }
    copyRow(candidates, bestTrial, centroids, c);
    for (let i = 0, offset = bestTrial * count; i < count; i++, offset++) closest[i] = Math.min(closest[i], distances[offset]);
  }
  return centroids;
}

/** Where a restart stands: assignments, and member sums kept up to date as points move, so the mean step costs O(moves · D), not O(N · D). */
interface LloydState {
  assignments: Int32Array;
  distances: Float64Array;
  sums: Float64Array;
  sizes: Float64Array;
}

function moveMember(context: Context, state: LloydState, point: number, to: number): void {
  const { data, dims } = context.points;
  const from = state.assignments[point];
  const offset = point * dims;
  if (from >= 0) {
    state.sizes[from]--;
    const base = from * dims;
    for (let d = 0; d < dims; d++) state.sums[base + d] -= data[offset + d];
  }
  state.sizes[to]++;
  const base = to * dims;
  for (let d = 0; d < dims; d++) state.sums[base + d] += data[offset + d];
  state.assignments[point] = to;
}

/** Assigns every point to its nearest centroid; returns how many assignments changed. */
function assign(context: Context, centroids: Matrix, state: LloydState): number {
  const squared = squaredDistances(context, centroids);
  const count = context.points.rows;
  const { assignments, distances } = state;
  let changed = 0;
  for (let i = 0; i < count; i++) {
    // A point stays put on a tie, so a re-seeded cluster keeps the duplicate point it was given.
    let best = assignments[i] >= 0 ? assignments[i] : 0;
    let bestDistance = squared[best * count + i];
    for (let c = 0; c < context.k; c++) {
      const distance = squared[c * count + i];
      if (distance < bestDistance) {
        bestDistance = distance;
        best = c;
      }
    }
    distances[i] = bestDistance;
    if (assignments[i] === best) continue;
    changed++;
    moveMember(context, state, i, best);
  }
  return changed;
}

/** Moves every centroid to its members' mean; an empty cluster takes the point farthest from its centre. Returns the summed squared shift. */
function update(context: Context, centroids: Matrix, state: LloydState): number {
  const { points, k } = context;
  const dims = points.dims;
  const { assignments, distances, sums, sizes } = state;
  const taken = new Uint8Array(points.rows);
  for (let c = 0; c < k; c++) {
    if (sizes[c] > 0) continue;
    // Whatever is left in an emptied sum is rounding residue.
    sums.fill(0, c * dims, (c + 1) * dims);
    let farthest = -1;
    for (let i = 0; i < points.rows; i++) {
      if (!taken[i] && sizes[assignments[i]] > 1 && (farthest < 0 || distances[i] > distances[farthest])) farthest = i;
    }
    if (farthest < 0) continue;
    taken[farthest] = 1;
    moveMember(context, state, farthest, c);
    distances[farthest] = 0;
  }
  let shift = 0;
  for (let c = 0; c < k; c++) {
    if (sizes[c] === 0) continue;
    for (let d = 0, offset = c * dims; d < dims; d++, offset++) {
      const mean = sums[offset] / sizes[c];
      shift += (mean - centroids.data[offset]) ** 2;
      centroids.data[offset] = mean;
    }
  }
  return shift;
}

function exactInertia(points: Matrix, centroids: Matrix, assignments: Int32Array): number {
  const { data, dims } = points;
  let inertia = 0;
  for (let i = 0; i < points.rows; i++) {
    const centre = assignments[i] * dims;
    for (let d = 0, offset = i * dims; d < dims; d++, offset++) inertia += (data[offset] - centroids.data[centre + d]) ** 2;
  }
  return inertia;
}

function lloyd(context: Context, centroids: Matrix, maxIterations: number): KMeansResult {
  const count = context.points.rows;
  const state: LloydState = {
    assignments: new Int32Array(count).fill(-1),
    distances: new Float64Array(count),
    sums: new Float64Array(context.k * context.points.dims),
    sizes: new Float64Array(context.k),
  };
  assign(context, centroids, state);
  let iterations = 0;
  while (iterations < maxIterations) {
    iterations++;
    const shift = update(context, centroids, state);
    const changed = assign(context, centroids, state);
    if (changed === 0 || shift <= context.shiftTolerance) break;
  }
  let inertia = 0;
  for (let i = 0; i < count; i++) inertia += state.distances[i];
  return { assignments: state.assignments, centroids, inertia, iterations };
}
