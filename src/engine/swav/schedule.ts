/** Linear warmup to the base rate, then cosine decay to the final rate, as SwAV's schedule. */
export function learningRateAt(progress: number, warmupFraction: number, baseRate: number, finalRate: number): number {
  const p = Math.min(1, Math.max(0, progress));
  if (p < warmupFraction) return (baseRate * p) / warmupFraction;
  const cosineProgress = warmupFraction >= 1 ? 1 : (p - warmupFraction) / (1 - warmupFraction);
  return finalRate + 0.5 * (baseRate - finalRate) * (1 + Math.cos(Math.PI * cosineProgress));
}
