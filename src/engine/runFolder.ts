import { existsSync, realpathSync, promises as fs } from 'node:fs';
import path from 'node:path';
import type { ImageRecord, SkippedFile, TrainOptions } from '../protocol/options';
import { EngineError, runFileError } from './errors';
import { writeFileAtomic } from './util/atomicFile';

/** What a run folder says about itself: where its images came from and how it was trained. */
export interface RunManifest {
  format: 'cluster-lens-run';
  imagesDir: string;
  options: TrainOptions;
  channels: 1 | 3;
  labelNames: string[];
  /** Where the run trained ("webgpu (NVIDIA H200, Vulkan)", "cpu"); runs from before TensorFlow.js was retired name its backend instead. */
  device?: string;
  createdAt: string;
  images: number;
  skipped: SkippedFile[];
}

export const runFiles = {
  manifest: 'run.json',
  images: 'images.json',
  metrics: 'metrics.jsonl',
  index: 'index.bin',
  /** The exact k-nearest-neighbour graph of the index's features (duplicates, outliers, UMAP). */
  neighbourGraph: 'neighbours.bin',
  /** The HNSW index of the features of runs over 50,000 images (usearch's format), and what it was built from. */
  neighbourIndex: 'neighbours.usearch',
  neighbourIndexStamp: 'neighbours.usearch.json',
  umap: 'umap.bin',
  /** What the cluster map loads as one binary fetch: coordinates, colours' inputs and paths. */
  mapPoints: 'map-points.bin',
} as const;

export function runPath(runDir: string, file: keyof typeof runFiles): string {
  return path.join(runDir, runFiles[file]);
}

export async function writeManifest(runDir: string, manifest: RunManifest, records: ImageRecord[]): Promise<void> {
  await writeFileAtomic(runPath(runDir, 'images'), JSON.stringify(records));
  await writeFileAtomic(runPath(runDir, 'manifest'), JSON.stringify(manifest, null, 2));
}

/** Image sizes a run may name (run.json, a checkpoint): beyond them one explanation needs gigabytes, or none decodes. */
export const imageSizeRange = { min: 8, max: 1024 } as const;

/** A whole number of pixels within imageSizeRange. */
export function isImageSize(value: unknown): value is number {
  return Number.isInteger(value) && (value as number) >= imageSizeRange.min && (value as number) <= imageSizeRange.max;
}

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * The options run.json may hold, each checked when present (runs from older versions lack some, and carry retired
 * ones, which are left alone): 'int' a whole number ≥ 0, 'number' a finite number, 'positive' a finite number > 0.
 */
const optionKinds: Record<string, 'int' | 'number' | 'positive' | 'boolean' | 'string' | 'scale' | 'blocks'> = {
  prototypes: 'int',
  epochs: 'int',
  minutes: 'number',
  stopWhenConverged: 'boolean',
  batchSize: 'int',
  width: 'int',
  blocksPerStage: 'blocks',
  architecture: 'string',
  projectionHiddenDim: 'int',
  projectionDim: 'int',
  localCrops: 'int',
  localCropSizePx: 'int',
  globalCropScale: 'scale',
  localCropScale: 'scale',
  learningRate: 'number',
  finalLearningRate: 'number',
  warmupEpochs: 'number',
  weightDecay: 'number',
  temperature: 'positive',
  sinkhornEpsilon: 'positive',
  sinkhornIterations: 'int',
  freezePrototypesSteps: 'int',
  queueLength: 'int',
  queueStartEpoch: 'int',
  seed: 'number',
  device: 'string',
  backbone: 'string',
  backboneNormalization: 'string',
  followLinks: 'boolean',
};

const optionExpected: Record<(typeof optionKinds)[string], string> = {
  int: 'a whole number ≥ 0',
  number: 'a finite number',
  positive: 'a number > 0',
  boolean: 'true or false',
  string: 'a string',
  scale: 'a pair [min, max] with 0 < min ≤ max ≤ 1',
  blocks: 'a list of whole numbers',
};

function optionValid(kind: (typeof optionKinds)[string], value: unknown): boolean {
  switch (kind) {
    case 'int':
      return Number.isSafeInteger(value) && (value as number) >= 0;
    case 'number':
      return typeof value === 'number' && Number.isFinite(value);
    case 'positive':
      return typeof value === 'number' && Number.isFinite(value) && value > 0;
    case 'boolean':
      return typeof value === 'boolean';
    case 'string':
      return typeof value === 'string';
    case 'scale':
      return Array.isArray(value) && value.length === 2 && value.every((v) => typeof v === 'number') && value[0] > 0 && value[0] <= value[1] && value[1] <= 1;
    case 'blocks':
      return Array.isArray(value) && value.length >= 1 && value.length <= 16 && value.every((v) => Number.isInteger(v) && v >= 0 && v <= 64);
  }
}

/**
 * Checks what run.json holds, naming the field and the fix (BAD_RUN). `strict`: the options the jobs use
 * (imageSizePx) must be there; without it only what is there is checked (reading the images folder alone).
 */
function validateManifest(value: unknown, file: string, runDir: string, strict: boolean): RunManifest {
  const retrain = `Train the run again ("cluster-lens train <images> --out ${runDir}"), or restore ${runFiles.manifest} from a backup`;
  const bad = (field: string, problem: string, fix = retrain) => runFileError(file, field, problem, fix);
  if (!isObject(value)) throw bad('the file', 'is not a JSON object');
  if (value.format !== 'cluster-lens-run') throw bad('"format"', `is ${JSON.stringify(value.format)}, not "cluster-lens-run"`);
  const { imagesDir } = value;
  if (typeof imagesDir !== 'string' || imagesDir.length === 0 || imagesDir.includes('\0') || !path.isAbsolute(imagesDir)) {
    throw bad('"imagesDir"', `is ${JSON.stringify(imagesDir)}; it must be the absolute path of the run's images folder`, `Set it to the folder the run was trained on, or train the run again`);
  }
  if (value.channels !== 1 && value.channels !== 3) throw bad('"channels"', `is ${JSON.stringify(value.channels)}; it must be 1 (grey) or 3 (colour)`);
  if (value.labelNames !== undefined && !(Array.isArray(value.labelNames) && value.labelNames.every((name) => typeof name === 'string'))) throw bad('"labelNames"', 'must be a list of strings');
  if (value.images !== undefined && !(Number.isSafeInteger(value.images) && (value.images as number) >= 0)) throw bad('"images"', `is ${JSON.stringify(value.images)}; it must be a whole number ≥ 0`);
  if (value.skipped !== undefined && !Array.isArray(value.skipped)) throw bad('"skipped"', 'must be a list');
  const options = value.options;
  if (!isObject(options)) throw bad('"options"', 'is missing or not an object');
  if (strict || options.imageSizePx !== undefined) {
    if (!isImageSize(options.imageSizePx)) {
      throw bad('"options.imageSizePx"', `is ${JSON.stringify(options.imageSizePx)}; it must be a whole number of pixels from ${imageSizeRange.min} to ${imageSizeRange.max}`, `Set it to the size the run was trained at (the checkpoint's options hold it), or train the run again`);
    }
  }
  for (const [name, kind] of Object.entries(optionKinds)) {
    if (options[name] !== undefined && !optionValid(kind, options[name])) throw bad(`"options.${name}"`, `is ${JSON.stringify(options[name])}; it must be ${optionExpected[kind]}`);
  }
  return value as unknown as RunManifest;
}

async function readManifestFile(runDir: string, strict: boolean): Promise<RunManifest> {
  const file = runPath(runDir, 'manifest');
  if (!existsSync(runDir)) throw new EngineError('NOT_FOUND', `The run folder ${runDir} does not exist. Pass a folder made by "cluster-lens train".`);
  if (!existsSync(file)) throw new EngineError('NO_CHECKPOINT', `${runDir} is not a Cluster Lens run (no ${runFiles.manifest}). Train a model into it first.`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(await fs.readFile(file, 'utf8'));
  } catch (error) {
    throw new EngineError('BAD_RUN', `${file} is damaged (${(error as Error).message}). Train the run again, or restore ${runFiles.manifest} from a backup.`, String(error));
  }
  return validateManifest(parsed, file, runDir, strict);
}

/** run.json, checked (BAD_RUN naming the field): its images folder, channels and the options the jobs use. */
export async function readManifest(runDir: string): Promise<RunManifest> {
  return readManifestFile(runDir, true);
}

/**
 * The run's images folder as run.json records it, checked: `imagesDir` as written, and `realDir` its real path
 * (links resolved; as written when the folder is gone), the root every image path of the run must stay under.
 */
export async function readRunImagesFolder(runDir: string): Promise<{ imagesDir: string; realDir: string }> {
  const { imagesDir } = await readManifestFile(runDir, false);
  return { imagesDir, realDir: await realPathOr(imagesDir) };
}

async function realPathOr(dir: string): Promise<string> {
  try {
    return await fs.realpath(dir);
  } catch {
    return path.resolve(dir);
  }
}

/** Whether `candidate` lies strictly under `root` (both absolute and resolved). */
export function isUnder(root: string, candidate: string): boolean {
  const relative = path.relative(root, candidate);
  return relative !== '' && relative !== '..' && !relative.startsWith(`..${path.sep}`) && !path.isAbsolute(relative);
}

/**
 * A path relative to the images folder, as the run's files record them (forward slashes): not absolute (nor a
 * drive path on Windows), no `..` segment, no NUL. Joined under the folder it stays there (a link inside the folder is checked
 * where the file is opened: see resolveImageInside).
 */
export function isSafeRecordPath(relative: unknown): relative is string {
  if (typeof relative !== 'string' || relative.length === 0 || relative.includes('\0')) return false;
  const windows = process.platform === 'win32';
  if (path.posix.isAbsolute(relative) || (windows && (path.win32.isAbsolute(relative) || /^[a-zA-Z]:/.test(relative)))) return false;
  return relative.split(windows ? /[\\/]/ : '/').every((segment) => segment !== '..');
}

/**
 * `relative` resolved under the images folder `imagesDir`, or undefined where it leaves it: lexically (`..`, an
 * absolute path) or through a link (the file's real path outside the folder's real path). A file that does not
 * exist is checked lexically only (opening it then fails as missing).
 */
export function resolveImageInside(imagesDir: string, relative: string): string | undefined {
  const root = path.resolve(imagesDir);
  const absolute = path.resolve(root, relative);
  if (relative.includes('\0') || !isUnder(root, absolute)) return undefined;
  let realFile: string;
  try {
    realFile = realpathSync.native(absolute);
  } catch {
    return absolute;
  }
  let realRoot: string;
  try {
    realRoot = realpathSync.native(root);
  } catch {
    realRoot = root;
  }
  return isUnder(realRoot, realFile) ? absolute : undefined;
}

/**
 * An image a request names: an absolute path is the user's own choice (the CLI's `explain <run> <image>` and
 * `neighbours` take any image file) and is used as given; a relative one is under the run's images folder and
 * must stay there (BAD_REQUEST otherwise), links included.
 */
export function resolveRequestImage(imagesDir: string, image: string): string {
  if (typeof image !== 'string' || image.length === 0 || image.includes('\0')) throw new EngineError('BAD_REQUEST', `The image ${JSON.stringify(image)} is not a path. Pass a path to an image file.`);
  if (path.isAbsolute(image)) return path.resolve(image);
  const inside = resolveImageInside(imagesDir, image);
  if (!inside) {
    throw new EngineError('BAD_REQUEST', `The image "${image}" leads outside the run's images folder ${imagesDir}. Pass a path inside that folder, or the absolute path of an image file.`);
  }
  return inside;
}
