import type { ResultOf } from '../protocol';

/** A short human summary of a result, for the terminal. */
export function formatResult(result: ResultOf[keyof ResultOf]): string {
  switch (result.kind) {
    case 'train':
      return [
        `${result.cancelled ? 'Cancelled' : 'Trained'} on ${result.images} images (${result.skipped.length} skipped) with ${result.backend}:`,
        `  ${result.epochs} epochs, ${result.steps} steps, final loss ${result.finalLoss.toFixed(4)}, ${result.imagesPerSecond.toFixed(1)} img/s, ${(result.durationMs / 1000).toFixed(1)} s`,
        `  checkpoint: ${result.checkpointPath}`,
        result.indexPath ? `  index: ${result.indexPath}` : '  no index (run "cluster-lens index")',
      ].join('\n');
    case 'index':
      return [
        `Indexed ${result.images} images with ${result.backend} in ${(result.durationMs / 1000).toFixed(1)} s (${result.imagesPerSecond.toFixed(0)} img/s); ${result.clusters.length} clusters in use:`,
        ...result.clusters
          .slice(0, 20)
          .map((c) => `  cluster ${String(c.cluster).padStart(3)}: ${String(c.size).padStart(6)} images${c.majorityLabel ? `, mostly ${c.majorityLabel} (${(100 * (c.purity ?? 0)).toFixed(0)}%)` : ''}`),
        result.clusters.length > 20 ? `  … and ${result.clusters.length - 20} more` : '',
      ]
        .filter(Boolean)
        .join('\n');
    case 'neighbours':
      return [
        `${result.query} is in cluster ${result.cluster}. Nearest images:`,
        ...result.neighbours.map((n) => `  ${n.similarity.toFixed(4)}  cluster ${String(n.cluster).padStart(3)}  ${n.path}`),
      ].join('\n');
    case 'evaluate':
      return [
        `${result.images} images (${result.skipped} skipped), backend ${result.backend}`,
        `  k-means on backbone features: NMI ${result.nmi.toFixed(4)}  ARI ${result.ari.toFixed(4)}  ACC ${result.acc.toFixed(4)}`,
        `  prototype assignment:         NMI ${result.proto_nmi.toFixed(4)}  ARI ${result.proto_ari.toFixed(4)}  ACC ${result.proto_acc.toFixed(4)}  (${result.clusters_used} clusters used)`,
        `  kNN (k=${result.knn_k}, leave-one-out):    ${result.knn.toFixed(4)}`,
      ].join('\n');
  }
}
