/**
 * SwAV's feature queue for small batches: past embeddings of the assigned crops, newest first. The training
 * graph scores them against the current prototypes to give Sinkhorn a larger, better-balanced pool.
 */
export class EmbeddingQueue {
  /** Per assigned crop, [length, dims] row-major; rows past `filled` are zeros. */
  private readonly slots: Float32Array[];
  private filled = 0;

  constructor(
    readonly length: number,
    readonly crops: number,
    readonly dims: number,
  ) {
    this.slots = Array.from({ length: crops }, () => new Float32Array(length * dims));
  }

  get isFull(): boolean {
    return this.filled >= this.length;
  }

  /** Each assigned crop's queued embeddings [length, dims], or undefined until the queue has filled once. */
  embeddings(): Float32Array[] | undefined {
    return this.isFull ? this.slots : undefined;
  }

  /** Pushes this batch's embeddings (one [B, dims] array per crop) in front, dropping the oldest. */
  push(embeddings: Float32Array[]): void {
    const rows = embeddings[0].length / this.dims;
    const kept = Math.min(rows, this.length);
    embeddings.forEach((embedding, crop) => {
      const slot = this.slots[crop];
      slot.copyWithin(kept * this.dims, 0, (this.length - kept) * this.dims);
      slot.set(embedding.subarray(0, kept * this.dims));
    });
    this.filled = Math.min(this.length, this.filled + rows);
  }

  dispose(): void {
    this.slots.forEach((slot) => slot.fill(0));
    this.filled = 0;
  }
}
