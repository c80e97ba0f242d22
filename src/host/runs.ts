// Run folders on disk and the mapping from VS Code settings to training options. No `vscode` here:
// the extension passes its configuration in, so this logic is unit-tested in plain Node.
import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import type { BackboneNormalization, TrainOptions } from '../protocol/options';
import type { EpochHealth, RunOverview, TrainingHealth } from '../protocol/engine';
import type { TrainingPoint } from '../protocol/webview';

export interface RunEntry {
  runDir: string;
  name: string;
  imagesDir: string;
  createdAt: string;
  images: number;
  hasIndex: boolean;
}

/** Runs under `runsRoot`, newest first; folders that are not runs, or are damaged, are left out. */
export async function listRuns(runsRoot: string): Promise<RunEntry[]> {
  if (!existsSync(runsRoot)) return [];
  const entries = await fs.readdir(runsRoot, { withFileTypes: true });
  const runs: RunEntry[] = [];
  for (const entry of entries) {
    if (!entry.isDirectory()) continue;
    const runDir = path.join(runsRoot, entry.name);
    try {
      const manifest = JSON.parse(await fs.readFile(path.join(runDir, 'run.json'), 'utf8')) as { imagesDir: string; createdAt: string; images: number };
      runs.push({ runDir, name: entry.name, imagesDir: manifest.imagesDir, createdAt: manifest.createdAt, images: manifest.images, hasIndex: existsSync(path.join(runDir, 'index.bin')) });
    } catch {
      // Not a run (or a damaged one): nothing to list.
    }
  }
  return runs.sort((a, b) => b.createdAt.localeCompare(a.createdAt));
}

/** A new run folder's name: the images folder's name and a sortable time stamp. */
export function newRunName(imagesDir: string, now = new Date()): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  const base = path.basename(path.resolve(imagesDir)).replace(/[^A-Za-z0-9._-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 40) || 'images';
  return `${base}-${stamp}`;
}

/** Where runs live: an absolute setting as is, a relative one under the workspace folder. */
export function runsRoot(setting: string, workspaceFolder: string | undefined, fallback: string): string {
  const value = setting.trim() || '.cluster-lens';
  if (path.isAbsolute(value)) return value;
  return path.join(workspaceFolder ?? fallback, value);
}

export interface TrainSettings {
  imageSizePx: number;
  prototypes: number;
  epochs: number;
  minutes: number;
  /** An ONNX backbone to train the head on ('' for the engine's own network), and its input normalisation. */
  backbone: string;
  backboneNormalization: BackboneNormalization;
  /** Follow links out of the images folder. */
  followLinks: boolean;
}

/** Settings of the TensorFlow.js era that no longer do anything, and what each chose. */
export const retiredSettings = {
  backend: 'the TensorFlow.js backend for the light tensor work',
  trainingRuntime: 'whether training steps ran on onnxruntime or TensorFlow.js',
};

/** The message for retired settings a user still has set, or undefined when none is. */
export function retiredSettingsMessage(isSet: (setting: string) => boolean): string | undefined {
  const set = Object.keys(retiredSettings).filter(isSet);
  if (set.length === 0) return undefined;
  const names = set.map((name) => `clusterLens.${name}`).join(' and ');
  return `${names} ${set.length > 1 ? 'are' : 'is'} no longer used: TensorFlow.js is retired and every step runs on onnxruntime. Remove ${set.length > 1 ? 'them' : 'it'} from your settings; clusterLens.device says where the work runs.`;
}

/** Settings become training options; zeros mean "use the engine's default", which stays in one place. */
export function trainOptionsFromSettings(settings: Partial<TrainSettings>): Partial<TrainOptions> {
  const options: Partial<TrainOptions> = {};
  if (settings.imageSizePx) options.imageSizePx = settings.imageSizePx;
  if (settings.prototypes) options.prototypes = settings.prototypes;
  if (settings.epochs) options.epochs = settings.epochs;
  if (settings.minutes !== undefined && settings.minutes >= 0 && (settings.minutes > 0 || settings.epochs)) options.minutes = settings.minutes;
  if (settings.backbone) options.backbone = settings.backbone;
  if (settings.backboneNormalization) options.backboneNormalization = settings.backboneNormalization;
  if (settings.followLinks) options.followLinks = true;
  return options;
}

/** True for the image files the explorer's "Explain cluster" applies to. */
export function isImageFile(filePath: string): boolean {
  return /\.(png|jpe?g|webp|bmp|gif|tiff?)$/i.test(filePath);
}

/** The engine's environment from settings: a positive thread count pins its CPU threads; the device is the engine's default. */
export function engineEnvironment(threads: number | undefined, device?: string): NodeJS.ProcessEnv {
  const environment: NodeJS.ProcessEnv = {};
  if (threads !== undefined && Number.isInteger(threads) && threads > 0) environment.CLUSTER_LENS_THREADS = String(threads);
  if (device === 'auto' || device === 'gpu' || device === 'cpu') environment.CLUSTER_LENS_DEVICE = device;
  return environment;
}

/** True when the image is one the run trained on (a row of its index); any other image is embedded on the fly. */
export function isInRun(overview: Pick<RunOverview, 'imagesDir' | 'paths'>, image: string): boolean {
  const relative = path.relative(overview.imagesDir, path.resolve(image));
  if (relative.startsWith('..') || path.isAbsolute(relative)) return false;
  return overview.paths.includes(relative.split(path.sep).join('/'));
}

/** The rows of a run's metrics.jsonl, in order; none when it has no file. */
async function readMetricRows(runDir: string): Promise<Record<string, unknown>[]> {
  let text: string;
  try {
    text = await fs.readFile(path.join(runDir, 'metrics.jsonl'), 'utf8');
  } catch {
    return [];
  }
  const rows: Record<string, unknown>[] = [];
  for (const line of text.split('\n')) {
    try {
      const row: unknown = JSON.parse(line);
      if (row && typeof row === 'object') rows.push(row as Record<string, unknown>);
    } catch {
      // A line cut short by a crash: the rest still counts.
    }
  }
  return rows;
}

/** A finished run's loss curve from its metrics.jsonl, thinned to at most `maxPoints` (the last step always kept). */
export async function readTrainingHistory(runDir: string, maxPoints = 2000): Promise<TrainingPoint[]> {
  const points: TrainingPoint[] = [];
  for (const row of (await readMetricRows(runDir)) as Partial<TrainingPoint>[]) {
    if (typeof row.step === 'number' && typeof row.loss === 'number') {
      points.push({ step: row.step, loss: row.loss, learningRate: row.learningRate ?? 0, imagesPerSecond: row.imagesPerSecond ?? 0 });
    }
  }
  if (points.length <= maxPoints) return points;
  const every = Math.ceil(points.length / maxPoints);
  return points.filter((_, i) => i % every === 0 || i === points.length - 1);
}

/** A run's health reading at each epoch's end (the `{epoch, health}` rows), with the step before it. */
export async function readHealthHistory(runDir: string): Promise<EpochHealth[]> {
  const readings: EpochHealth[] = [];
  let step = 0;
  for (const row of await readMetricRows(runDir)) {
    if (typeof row.step === 'number') step = row.step;
    const health = row.health as TrainingHealth | undefined;
    if (health && typeof health === 'object' && typeof health.state === 'string') readings.push({ step, health });
  }
  return readings;
}
