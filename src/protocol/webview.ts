// Messages between the extension host and its webviews (dashboard, cluster map, gallery, explain panel).
import type { ExplainMethod, Neighbour } from './options';
import type { MapLayout } from './mapPoints';
import type { DuplicatesResult, EpochHealth, ExplainResult, NeighboursResult, OutliersResult, ProgressEvent, RunOverview } from './engine';

/** One point of the loss curve, as written to metrics.jsonl. */
export interface TrainingPoint {
  step: number;
  loss: number;
  learningRate: number;
  imagesPerSecond: number;
}

/** Host → training dashboard. */
export type ToDashboard =
  | { type: 'dashboard.reset'; runName: string; history: TrainingPoint[]; /** The images folder's name, shown in the header. */ folder?: string }
  | { type: 'dashboard.progress'; event: ProgressEvent; /** What the header says now: the phase and its detail. */ headline?: string }
  | {
      type: 'dashboard.finished';
      summary: string;
      failed: boolean;
      /** Every step of the run (from its metrics.jsonl): progress events are sampled and may miss the last steps. */
      history?: TrainingPoint[];
      /** Epochs completed. */
      epochs?: number;
      /** The health reading at each epoch's end (from metrics.jsonl), so a run opened later shows its state. */
      healthHistory?: EpochHealth[];
    };

/** The commands a panel's buttons may run; the host runs nothing else a webview asks for. */
export const webviewCommands = ['clusterLens.train', 'clusterLens.openRun', 'clusterLens.showClusterMap', 'clusterLens.showDashboard'] as const;
export type WebviewCommand = (typeof webviewCommands)[number];

/** Any webview → host. */
export type FromWebview =
  | { type: 'webview.ready' }
  | { type: 'webview.openImage'; path: string }
  | { type: 'webview.explainImage'; path: string }
  | { type: 'webview.command'; command: WebviewCommand };



/**
 * Host → cluster map. `imageBase` is the webview URI of imagesDir; thumbnails are imageBase + '/' + path.
 * `pointsUrl` is the webview URI of map-points.bin, fetched as an ArrayBuffer.
 */
export type ToClusterMap =
  | { type: 'map.points'; pointsUrl: string; imageBase: string; runName: string; clusters: number; layout?: MapLayout }
  | { type: 'map.layoutProgress'; message: string; fraction: number }
  | { type: 'map.layoutFailed'; message: string };

/** Cluster map → host, besides the common FromWebview messages. */
export type FromClusterMap =
  | FromWebview
  | { type: 'map.selection'; imageIndices: number[] }
  /** Compute a layout the file does not hold yet (UMAP). */
  | { type: 'map.computeLayout'; layout: MapLayout }
  /** The lasso's images: copy their absolute paths, or save them as a file list. */
  | { type: 'map.copyPaths'; paths: string[] }
  | { type: 'map.savePaths'; paths: string[] };

/** Host → the Clusters side panel. */
export type ToGallery =
  | { type: 'gallery.data'; overview: RunOverview; imageBase: string }
  | { type: 'gallery.neighbours'; query: string; cluster: number; neighbours: Neighbour[]; search?: NeighboursResult['search'] }
  | { type: 'gallery.duplicates'; result: DuplicatesResult }
  | { type: 'gallery.outliers'; result: OutliersResult }
  | { type: 'gallery.curationFailed'; message: string }
  | { type: 'gallery.empty'; message: string };

/** The Clusters side panel → host, besides the common FromWebview messages. */
export type FromGallery = FromWebview | { type: 'gallery.findDuplicates' } | { type: 'gallery.findOutliers' };

/** Host → the explain panel. Images arrive as base64 PNGs in the results (`inlinePngs`). */
export type ToExplainPanel =
  | { type: 'explain.loading'; runDir: string; image: string; imageName: string }
  | {
      type: 'explain.gradcam';
      result: ExplainResult;
      prototypes: number;
      imageBase: string;
      /** False when the image was not part of the run's training: it was embedded on the fly and placed among the run's clusters. */
      inRun?: boolean;
      /** Images per cluster in the run's index: an empty cluster cannot lend regions, so it is not offered as a target. */
      clusterSizes?: number[];
      runName?: string;
    }
  | { type: 'explain.counterfactual'; result: ExplainResult }
  /** A counterfactual search under way (fraction 0–1), or cancelled. */
  | { type: 'explain.progress'; fraction: number; message: string }
  | { type: 'explain.cancelled' }
  | { type: 'explain.error'; stage: 'gradcam' | 'counterfactual'; message: string };

/** The methods the explain panel offers for its counterfactual. */
export type CounterfactualMethod = Extract<ExplainMethod, 'counterfactual' | 'counterfactual-mask' | 'counterfactual-pixel'>;

/** Explain panel → host, besides the common FromWebview messages. */
export type FromExplainPanel =
  | FromWebview
  | { type: 'explain.counterfactualTarget'; cluster: number; method?: CounterfactualMethod }
  | { type: 'explain.cancel' };

/** What the explain panel keeps across reloads: enough for the host to explain the same image again. */
export interface ExplainPanelState {
  opacity: number;
  runDir?: string;
  image?: string;
}
