import * as tf from '@tensorflow/tfjs-core';

/**
 * SwAV's feature queue for small batches: past embeddings of the assigned crops, newest first,
 * scored against the current prototypes to give Sinkhorn a larger, better-balanced pool.
 */
export class EmbeddingQueue {
  private readonly slots: (tf.Tensor2D | undefined)[];
  private filled = 0;

  constructor(
    readonly length: number,
    readonly crops: number,
  ) {
    this.slots = new Array(crops).fill(undefined);
  }

  get isFull(): boolean {
    return this.filled >= this.length;
  }

  /** Queue scores for each crop, or undefined until the queue has filled once. */
  scores(prototypes: tf.Tensor2D): (tf.Tensor2D | undefined)[] {
    if (!this.isFull) return this.slots.map(() => undefined);
    return this.slots.map((slot) => (slot ? (tf.matMul(slot, prototypes, false, true) as tf.Tensor2D) : undefined));
  }

  /** Pushes this batch's embeddings (one [B, D] per crop) in front, dropping the oldest. */
  push(embeddings: tf.Tensor2D[]): void {
    embeddings.forEach((embedding, crop) => {
      const previous = this.slots[crop];
      const next = tf.tidy(() => {
        const joined = previous ? tf.concat([embedding, previous]) : embedding;
        return tf.keep(tf.slice(joined, [0, 0], [Math.min(this.length, joined.shape[0]), -1]) as tf.Tensor2D);
      });
      previous?.dispose();
      this.slots[crop] = next;
    });
    this.filled = Math.min(this.length, this.filled + embeddings[0].shape[0]);
  }

  dispose(): void {
    this.slots.forEach((slot) => slot?.dispose());
    this.slots.fill(undefined);
    this.filled = 0;
  }
}
