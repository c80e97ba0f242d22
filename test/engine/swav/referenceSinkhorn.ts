/** Float64 Sinkhorn written straight from the SwAV paper, to compare against. */
export function referenceSinkhorn(scores: number[][], epsilon: number, iterations: number): number[][] {
  const samples = scores.length;
  const prototypes = scores[0].length;
  let q = Array.from({ length: prototypes }, (_, k) => Array.from({ length: samples }, (_, b) => Math.exp(scores[b][k] / epsilon)));
  const total = q.flat().reduce((a, b) => a + b, 0);
  q = q.map((row) => row.map((v) => v / total));
  for (let i = 0; i < iterations; i++) {
    q = q.map((row) => {
      const sum = row.reduce((a, b) => a + b, 0);
      return row.map((v) => v / sum / prototypes);
    });
    for (let b = 0; b < samples; b++) {
      let sum = 0;
      for (let k = 0; k < prototypes; k++) sum += q[k][b];
      for (let k = 0; k < prototypes; k++) q[k][b] = q[k][b] / sum / samples;
    }
  }
  return Array.from({ length: samples }, (_, b) => Array.from({ length: prototypes }, (_, k) => q[k][b] * samples));
}

