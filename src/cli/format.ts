import type { RanOn } from '../protocol/options';
import { healthStateLabels, type EvaluateCounterfactualsResult, type EvaluateExplanationsResult, type ExplainResult, type ResultOf } from '../protocol/engine';
import { stopReasonText } from '../host/progressText';

/** "webgpu (NVIDIA H200)", "cpu". */
function deviceName(result: RanOn): string {
  return `${result.device ?? 'cpu'}${result.adapter ? ` (${result.adapter})` : ''}`;
}

/** A short human summary of a result, for the terminal. */
export function formatResult(result: ResultOf[keyof ResultOf]): string {
  switch (result.kind) {
    case 'train':
      return [
        `${result.cancelled ? 'Cancelled' : 'Trained'} on ${result.images} images (${result.skipped.length} skipped) on ${deviceName(result)}:`,
        `  ${result.epochs} epochs, ${result.steps} steps, final loss ${result.finalLoss.toFixed(4)}, ${result.imagesPerSecond.toFixed(1)} img/s, ${(result.durationMs / 1000).toFixed(1)} s`,
        `  stopped: ${stopReasonText(result)}`,
        result.health
          ? `  health: ${healthStateLabels[result.health.state]}; ${result.health.prototypesUsed}/${result.health.prototypes} prototypes used (entropy ${result.health.usageEntropy.toFixed(2)} of ${result.health.lossReference.toFixed(2)})${result.health.changedShare !== undefined ? `, ${(100 * result.health.changedShare).toFixed(1)}% changed cluster in the last epoch` : ''}. ${result.health.advice}`
          : '',
        `  checkpoint: ${result.checkpointPath}`,
        result.indexPath ? `  index: ${result.indexPath}` : '  no index (run "cluster-lens index")',
      ]
        .filter(Boolean)
        .join('\n');
    case 'index':
      return [
        `Indexed ${result.images} images on ${deviceName(result)} in ${(result.durationMs / 1000).toFixed(1)} s (${result.imagesPerSecond.toFixed(0)} img/s); ${result.clusters.length} clusters in use:`,
        ...result.clusters
          .slice(0, 20)
          .map((c) => `  cluster ${String(c.cluster).padStart(3)}: ${String(c.size).padStart(6)} images${c.majorityLabel ? `, mostly ${c.majorityLabel} (${(100 * (c.purity ?? 0)).toFixed(0)}%)` : ''}`),
        result.clusters.length > 20 ? `  … and ${result.clusters.length - 20} more` : '',
      ]
        .filter(Boolean)
        .join('\n');
    case 'neighbours':
      return [
        `${result.query} is in cluster ${result.cluster}. Nearest images${result.search ? ` (${result.search === 'approximate' ? "approximate: the run's HNSW index" : 'exact scan'})` : ''}:`,
        ...result.neighbours.map((n) => `  ${n.similarity.toFixed(4)}  cluster ${String(n.cluster).padStart(3)}  ${n.path}`),
      ].join('\n');
    case 'evaluate':
      return [
        `${result.images} images (${result.skipped} skipped)${result.device ? ` on ${deviceName(result)}` : ''}`,
        `  k-means on backbone features: NMI ${result.nmi.toFixed(4)}  ARI ${result.ari.toFixed(4)}  ACC ${result.acc.toFixed(4)}`,
        `  k-means on projections:       NMI ${result.projection_nmi.toFixed(4)}  ARI ${result.projection_ari.toFixed(4)}  ACC ${result.projection_acc.toFixed(4)}`,
        `  prototype assignment:         NMI ${result.proto_nmi.toFixed(4)}  ARI ${result.proto_ari.toFixed(4)}  ACC ${result.proto_acc.toFixed(4)}  (${result.clusters_used} clusters used)`,
        `  kNN (k=${result.knn_k}, leave-one-out):    ${result.knn.toFixed(4)}`,
        ...(result.pixels
          ? [
              `  raw pixels (${result.pixels.imageSizePx} px), the baseline:`,
              `    k-means on pixels:            NMI ${result.pixels.plain.nmi.toFixed(4)}  ARI ${result.pixels.plain.ari.toFixed(4)}  ACC ${result.pixels.plain.acc.toFixed(4)}`,
              `    k-means on L2-normalised:     NMI ${result.pixels.normalised.nmi.toFixed(4)}  ARI ${result.pixels.normalised.ari.toFixed(4)}  ACC ${result.pixels.normalised.acc.toFixed(4)}`,
              `    kNN on pixels:                ${result.pixels.plain.knn.toFixed(4)}`,
              `  learned features ${result.nmi > result.pixels.normalised.nmi ? 'beat both pixel baselines' : result.nmi > result.pixels.plain.nmi ? 'beat plain pixels but not L2-normalised ones' : 'do not beat raw pixels yet: train longer (see the health line of train)'} on k-means NMI`,
            ]
          : []),
      ].join('\n');
    case 'explain':
      return formatExplanation(result);
    case 'evaluate-explanations':
      return formatExplanationScores(result);
    case 'evaluate-counterfactuals':
      return formatCounterfactualScores(result);
    case 'overview':
      return `${result.overview.paths.length} images in ${result.overview.clusters.length} clusters (${result.overview.runDir})`;
    case 'exportOnnx':
      return `Wrote ${result.outPath} (${(result.bytes / 1024).toFixed(0)} KiB, opset ${result.opset}): input images [N, ${result.channels}, ${result.imageSizePx}, ${result.imageSizePx}] in [0, 1]; outputs embedding [N, ${result.projectionDim}], prototype_scores [N, ${result.prototypes}], features [N, ${result.featureDim}].`;
    case 'layout':
      return `${result.computed ? 'Computed' : 'Kept'} the UMAP layout of ${result.images} images in ${(result.durationMs / 1000).toFixed(1)} s: ${result.path}`;
    case 'mapPoints':
      return `Wrote ${result.path}: ${result.images} points, layouts ${result.layouts.join(', ')}`;
    case 'duplicates':
      return [
        `${result.groups.length} groups of near-duplicates among ${result.images} images (cosine ≥ ${result.threshold}, exact copies first; ${(result.durationMs / 1000).toFixed(1)} s):`,
        ...result.groups.slice(0, 50).map((group) => `  ${group.exact ? 'identical' : `≥ ${group.minSimilarity.toFixed(4)}`}  ${group.paths.join('  ')}`),
        result.groups.length > 50 ? `  … and ${result.groups.length - 50} more (--json lists all)` : '',
      ]
        .filter(Boolean)
        .join('\n');
    case 'outliers':
      return [
        `The ${result.outliers.length} most isolated of ${result.images} images (score: 1 − cosine similarity to the ${result.k}th nearest neighbour):`,
        ...result.outliers.map((outlier) => `  ${outlier.score.toFixed(4)}  cluster ${String(outlier.cluster).padStart(3)}  ${outlier.path}`),
      ].join('\n');
    case 'exportAssignments':
      return `Wrote ${result.rows} rows (${result.columns.join(', ')}) to ${result.outPath}`;
  }
}

const percent = (value: number) => `${(100 * value).toFixed(1)}%`;

function formatExplanation(result: ExplainResult): string {
  const target = result.target;
  const lines = [
    `${result.image} is in cluster ${result.cluster}. Most probable clusters: ${result.topPrototypes.map((p) => `${p.prototype} (${percent(p.probability)})`).join(', ')}`,
    target.kind === 'prototype'
      ? `${result.method} explains cluster ${target.prototype}${target.assigned ? ' (the assigned one)' : ''}: score ${target.score.toFixed(4)}, probability ${percent(target.probability)}; ${result.durationMs.toFixed(0)} ms`
      : `${result.method} explains the similarity ${target.similarity.toFixed(4)} to ${target.pair === 'augmented' ? 'an augmented view of the image' : target.pairImage}; ${result.durationMs.toFixed(0)} ms`,
  ];
  const counterfactual = result.counterfactual;
  if (counterfactual) {
    if (counterfactual.regions && counterfactual.donors) {
      const donors = counterfactual.donors.map((donor) => donor.path).join(', ');
      lines.push(`  ${counterfactual.kind} edit: ${counterfactual.regions.length} region${counterfactual.regions.length === 1 ? '' : 's'} borrowed from ${donors}`);
      const plan = counterfactual.search;
      if (plan?.reduced) lines.push(`  search fitted to ${(plan.budgetMs / 1000).toFixed(0)} s at ${plan.msPerImage.toFixed(plan.msPerImage < 10 ? 1 : 0)} ms an image: ${plan.gridCells} × ${plan.gridCells} grid, ${plan.donors} donor${plan.donors === 1 ? '' : 's'}, ≤ ${plan.candidatesPerRound} candidates a round${plan.stopped ? '; stopped at twice the budget' : ''}`);
    }
    lines.push(
      `  counterfactual ${counterfactual.valid ? 'reached' : 'did not reach'} cluster ${counterfactual.targetCluster} (now cluster ${counterfactual.newCluster}, p = ${percent(counterfactual.targetProbability)}, was ${percent(counterfactual.originalTargetProbability)})`,
      `  edit: L1 ${counterfactual.l1Distance.toFixed(2)}, L2 ${counterfactual.l2Distance.toFixed(3)}, ${percent(counterfactual.changedPixelShare)} of pixels changed by more than 0.05; ${counterfactual.steps} ${counterfactual.kind === 'region' ? 'rounds' : 'steps'}${counterfactual.kind === 'pixel' && counterfactual.converged ? ' (stopped early)' : ''} in ${(counterfactual.durationMs / 1000).toFixed(2)} s`,
    );
  }
  if (result.neighbours.length > 0) lines.push(`  nearest image: ${result.neighbours[0].path} (similarity ${result.neighbours[0].similarity.toFixed(4)}, cluster ${result.neighbours[0].cluster})`);
  for (const [name, file] of Object.entries(result.files ?? {})) lines.push(`  ${name.padEnd(15)} ${file}`);
  return lines.join('\n');
}

function formatExplanationScores(result: EvaluateExplanationsResult): string {
  // The seed's table: ↑ higher is better, ↓ lower is better.
  const columns: [string, (row: EvaluateExplanationsResult['rows'][number]) => number][] = [
    ['SI↑', (row) => row.simultaneousInsertion],
    ['SD↓', (row) => row.simultaneousDeletion],
    ['CI↑', (row) => row.conditionalInsertion],
    ['CD↓', (row) => row.conditionalDeletion],
    ['SAD↓', (row) => row.simultaneousAverageDrop],
    ['SIC↑', (row) => row.simultaneousIncrease],
    ['CAD↓', (row) => row.conditionalAverageDrop],
    ['CID↑', (row) => row.conditionalIncrease],
    ['MS↓', (row) => row.maxSensitivity],
    ['CGC↑', (row) => row.consistencyCosine],
    ['CGC-loss↓', (row) => row.consistencyLoss],
    ['ms/img', (row) => row.durationMsPerImage],
  ];
  const width = Math.max(...result.rows.map((row) => row.method.length), 'method'.length);
  const header = ['method'.padEnd(width), ...columns.map(([name]) => name.padStart(9))].join(' ');
  const rows = result.rows.map((row) => [row.method.padEnd(width), ...columns.map(([name, pick]) => (name === 'ms/img' ? pick(row).toFixed(0) : pick(row).toFixed(3)).padStart(9))].join(' '));
  return [
    `Explanations of the similarity of ${result.images} images to their ${result.pair === 'neighbour' ? 'nearest neighbours' : 'augmented views'}${result.device ? ` on ${deviceName(result)}` : ''} (${(result.durationMs / 1000).toFixed(1)} s):`,
    header,
    ...rows,
  ].join('\n');
}

function formatCounterfactualScores(result: EvaluateCounterfactualsResult): string {
  const header = `${'method'.padEnd(22)}${'valid'.padStart(8)}${'changed (median)'.padStart(18)}${'changed (p90)'.padStart(15)}${'L1 (median)'.padStart(13)}${'time (median)'.padStart(15)}${'regions'.padStart(9)}`;
  const rows = result.rows.map(
    (row) =>
      `${row.method.padEnd(22)}${percent(row.validity).padStart(8)}${percent(row.medianChangedPixelShare).padStart(18)}${percent(row.p90ChangedPixelShare).padStart(15)}` +
      `${row.medianL1Distance.toFixed(1).padStart(13)}${`${(row.medianDurationMs / 1000).toFixed(2)} s`.padStart(15)}${(row.medianRegions === undefined ? '' : String(row.medianRegions)).padStart(9)}`,
  );
  const faithfulness = result.gradCam.map(
    (row) =>
      `${row.removal.padEnd(8)}deletion AUC Grad-CAM ${row.gradCamDeletion.toFixed(3)} vs random ${row.randomDeletion.toFixed(3)}, below random on ${percent(row.deletionBelowRandom)} of images; ` +
      `insertion AUC ${row.gradCamInsertion.toFixed(3)} vs ${row.randomInsertion.toFixed(3)}, above on ${percent(row.insertionAboveRandom)}`,
  );
  return [
    `${result.images} images of ${result.runDir}, each moved toward its nearest other cluster (on ${deviceName(result)}, ${(result.durationMs / 1000).toFixed(0)} s):`,
    header,
    ...rows,
    '',
    'Grad-CAM on the assigned cluster, its probability as pixels go in the map\'s order (black: painted black; road: noisy linear imputation):',
    ...faithfulness,
  ].join('\n');
}
