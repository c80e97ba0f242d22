// Whether SwAV training is working, from signals it already computes: which prototype each image's first global
// crop lands on (argmax of its scores), and the loss. No extra forward pass and no labels.
import type { HealthState, TrainingHealth } from '../../protocol/engine';

/** Entropy (nats) of the shares `counts / sum(counts)`; 0 for no counts. */
export function usageEntropy(counts: ArrayLike<number>): number {
  let total = 0;
  for (let i = 0; i < counts.length; i++) total += counts[i];
  if (total <= 0) return 0;
  let entropy = 0;
  for (let i = 0; i < counts.length; i++) {
    const share = counts[i] / total;
    if (share > 0) entropy -= share * Math.log(share);
  }
  return entropy;
}

/**
 * Each image's cluster in the current and the previous epoch, as seen by the training steps. The change between
 * epochs counts only images seen in both (the last partial batch of an epoch is skipped by the trainer).
 */
export class AssignmentTracker {
  private previous: Int32Array;
  private current: Int32Array;
  /** Images per prototype this epoch. */
  readonly counts: Float64Array;

  constructor(
    readonly images: number,
    readonly prototypes: number,
  ) {
    this.previous = new Int32Array(images).fill(-1);
    this.current = new Int32Array(images).fill(-1);
    this.counts = new Float64Array(prototypes);
  }

  record(imageIndices: ArrayLike<number>, clusters: ArrayLike<number>): void {
    for (let i = 0; i < imageIndices.length; i++) {
      this.current[imageIndices[i]] = clusters[i];
      this.counts[clusters[i]]++;
    }
  }

  /** How many prototypes took at least one image this epoch. */
  get prototypesUsed(): number {
    return this.counts.reduce((used, count) => used + (count > 0 ? 1 : 0), 0);
  }

  /** The share of images seen in both epochs whose cluster changed; undefined before a second epoch. */
  changedShare(): number | undefined {
    let both = 0;
    let changed = 0;
    for (let i = 0; i < this.images; i++) {
      if (this.previous[i] < 0 || this.current[i] < 0) continue;
      both++;
      if (this.previous[i] !== this.current[i]) changed++;
    }
    return both > 0 ? changed / both : undefined;
  }

  /** Closes the epoch: this epoch's clusters become the reference for the next. */
  endEpoch(): void {
    [this.previous, this.current] = [this.current, this.previous];
    this.current.fill(-1);
    this.counts.fill(0);
  }
}

/**
 * When a run counts as converged, and the thresholds behind the other states. Augmentation alone moves a share of
 * images between neighbouring prototypes every epoch (measured: about 70% with 30 prototypes on the Fashion-MNIST
 * sample), so convergence is the changes and the loss no longer falling, compared over windows of epochs, not
 * the changes reaching zero.
 */
export interface HealthCriteria {
  /** Epochs in each window compared: the last `window` against the `window` before. */
  window: number;
  /** Windows in a row, one epoch apart, that must show no progress. */
  stableEpochs: number;
  /** No progress: the mean share of changed images fell by at most this much between the windows… */
  changePlateau: number;
  /** …and the mean loss by at most this fraction. */
  lossPlateau: number;
  /** Collapse: the loss within this fraction of ln K (the loss of predictions that say nothing) and falling by less than `lossPlateau` an epoch… */
  collapseLossMargin: number;
  /** …or fewer than this share of the prototypes (at least 2) take images in an epoch. */
  collapseUsedShare: number;
  /** Diverged: the epoch's mean loss this far above the lowest so far, for `window` epochs in a row. */
  risingLossMargin: number;
}

export const defaultHealthCriteria: Readonly<HealthCriteria> = Object.freeze({
  window: 3,
  stableEpochs: 2,
  changePlateau: 0.02,
  lossPlateau: 0.01,
  collapseLossMargin: 0.01,
  collapseUsedShare: 0.1,
  risingLossMargin: 0.1,
});

export const healthAdvice: Record<HealthState, string> = {
  collapsing: 'Most images land on a few prototypes or the loss sits at ln K: lower the learning rate, lengthen the warm-up, or turn on the queue for small batches.',
  learning: 'Clusters are still moving and the loss is falling: more training time should help.',
  converged: 'Cluster assignments and the loss have stopped changing: more training is unlikely to change the clusters.',
  diverged: 'The loss is NaN or rising: lower the learning rate and train again.',
};

interface EpochRecord {
  meanLoss: number;
  changedShare?: number;
  prototypesUsed: number;
  usageEntropy: number;
}

/**
 * Follows a run step by step and names its state. Within an epoch it judges from what it has seen so far
 * (usage, loss), so a collapse shows within the first epoch; convergence is judged at epoch ends.
 */
export class HealthMonitor {
  readonly tracker: AssignmentTracker;
  private readonly epochs: EpochRecord[] = [];
  private lossSum = 0;
  private lossCount = 0;
  private recentLosses: number[] = [];
  private converged = false;
  private stable = 0;

  constructor(
    images: number,
    readonly prototypes: number,
    private readonly criteria: HealthCriteria = defaultHealthCriteria,
  ) {
    this.tracker = new AssignmentTracker(images, prototypes);
  }

  /** One step: the images it trained on, their clusters and the loss. Returns the state as of this step. */
  observeStep(imageIndices: ArrayLike<number>, clusters: ArrayLike<number>, loss: number, extra: Pick<TrainingHealth, 'queueActive'>): TrainingHealth {
    this.tracker.record(imageIndices, clusters);
    this.lossSum += loss;
    this.lossCount++;
    this.recentLosses.push(loss);
    if (this.recentLosses.length > 10) this.recentLosses.shift();
    return this.health(extra, loss);
  }

  /** Closes an epoch; returns its health, with the share of images that changed cluster since the last one. */
  endEpoch(extra: Pick<TrainingHealth, 'queueActive'>): TrainingHealth {
    const changedShare = this.tracker.changedShare();
    const meanLoss = this.lossCount ? this.lossSum / this.lossCount : NaN;
    this.epochs.push({ meanLoss, changedShare, prototypesUsed: this.tracker.prototypesUsed, usageEntropy: usageEntropy(this.tracker.counts) });
    this.stable = this.stableRun();
    this.converged = this.stable >= this.criteria.stableEpochs;
    this.tracker.endEpoch();
    const health = this.health(extra, meanLoss);
    this.lossSum = 0;
    this.lossCount = 0;
    return health;
  }

  /** Whether the last `stableEpochs` epochs were stable: few changes, no longer improving, loss flat. */
  get isConverged(): boolean {
    return this.converged;
  }

  /** How many epochs in a row, counting back from the last, show no progress over the window before them. */
  private stableRun(): number {
    const { window, changePlateau, lossPlateau } = this.criteria;
    const epochs = this.epochs;
    const mean = (values: number[]) => values.reduce((a, b) => a + b, 0) / values.length;
    let run = 0;
    // Epoch 0 has no change share; a comparison needs two whole windows after it.
    for (let e = epochs.length - 1; e >= 2 * window; e--) {
      const recent = epochs.slice(e - window + 1, e + 1);
      const before = epochs.slice(e - 2 * window + 1, e - window + 1);
      const changeDrop = mean(before.map((epoch) => epoch.changedShare ?? 1)) - mean(recent.map((epoch) => epoch.changedShare ?? 1));
      const lossBefore = mean(before.map((epoch) => epoch.meanLoss));
      const lossDrop = (lossBefore - mean(recent.map((epoch) => epoch.meanLoss))) / Math.max(Math.abs(lossBefore), 1e-9);
      if (!(changeDrop <= changePlateau && lossDrop <= lossPlateau)) break;
      run++;
    }
    return run;
  }

  private state(loss: number): HealthState {
    const { collapseLossMargin, collapseUsedShare, lossPlateau, risingLossMargin, window } = this.criteria;
    if (!Number.isFinite(loss)) return 'diverged';
    const finished = this.epochs.filter((epoch) => Number.isFinite(epoch.meanLoss));
    if (finished.length > window) {
      const lowest = Math.min(...finished.map((epoch) => epoch.meanLoss));
      const rising = finished.slice(-window).every((epoch) => epoch.meanLoss > lowest + risingLossMargin * Math.abs(lowest));
      if (rising) return 'diverged';
    }
    // One prototype puts every image in one cluster: nothing to learn.
    if (this.prototypes < 2) return 'collapsing';
    // Usage is judged over a whole epoch: in the first steps a random network maps most images to a few prototypes.
    const last = this.epochs.at(-1);
    if (last && last.prototypesUsed < Math.max(2, Math.ceil(collapseUsedShare * this.prototypes))) return 'collapsing';
    // A healthy run starts near ln K too, but leaves it: collapse is a loss at ln K that has stopped falling.
    const recent = this.recentLosses.reduce((a, b) => a + b, 0) / Math.max(1, this.recentLosses.length);
    const atReference = Math.abs(recent - Math.log(this.prototypes)) <= collapseLossMargin * Math.log(this.prototypes);
    const before = this.epochs.at(-2);
    if (atReference && last && before && before.meanLoss - last.meanLoss < lossPlateau * Math.abs(before.meanLoss)) return 'collapsing';
    if (this.converged) return 'converged';
    return 'learning';
  }

  /** Usage and changes are the last whole epoch's (in the first epoch, usage so far). */
  private health(extra: Pick<TrainingHealth, 'queueActive'>, loss: number): TrainingHealth {
    const state = this.state(loss);
    const last = this.epochs.at(-1);
    return {
      state,
      advice: healthAdvice[state],
      epochsObserved: this.epochs.length,
      prototypesUsed: last?.prototypesUsed ?? this.tracker.prototypesUsed,
      prototypes: this.prototypes,
      usageEntropy: last?.usageEntropy ?? usageEntropy(this.tracker.counts),
      changedShare: last?.changedShare,
      stableEpochs: this.stable,
      lossReference: Math.log(this.prototypes),
      ...extra,
    };
  }
}
