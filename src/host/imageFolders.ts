// Which workspace folders hold images, and how many: the choices of "Train Model…". No `vscode` here, so it is
// unit-tested in plain Node. Counting stops at a cap, so a folder of millions of files answers as fast as a small one.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { isImageFile } from './runs';

export interface ImageFolder {
  folder: string;
  /** Images in the folder and below, up to the cap. */
  images: number;
  /** True when counting stopped at the cap (or the entry budget): there are at least `images`. */
  capped: boolean;
  /** True for a workspace folder itself. */
  isRoot: boolean;
}

export interface CandidateOptions {
  /** Stop counting a folder's images here. */
  imageCap?: number;
  /** Stop walking a folder after this many directory entries (a tree of non-images costs no more than this). */
  entryBudget?: number;
  /** How deep below a workspace folder a candidate may be. */
  maxDepth?: number;
  /** Folders never offered nor walked (absolute), e.g. the runs folder. */
  exclude?: string[];
  /** At most this many candidates. */
  maxCandidates?: number;
  /** Stop looking at further folders after this long: the question appears quickly, with what was found. */
  timeBudgetMs?: number;
}

export const imageCountCap = 10_000;

/** Folders nobody trains on: version control, dependencies, build output, editors' own. */
const skippedNames = new Set(['node_modules', '__pycache__', 'dist', 'out', 'build', 'target']);

function skipped(name: string): boolean {
  return name.startsWith('.') || skippedNames.has(name);
}

/** Counts images under `folder`, stopping at `cap` images or `entryBudget` entries. */
export async function countImages(folder: string, cap = imageCountCap, entryBudget = 200_000, exclude: string[] = []): Promise<{ images: number; capped: boolean }> {
  let images = 0;
  let entries = 0;
  const pending = [folder];
  while (pending.length) {
    const dir = pending.pop()!;
    let handle;
    try {
      handle = await fs.opendir(dir);
    } catch {
      continue; // unreadable: nothing to count
    }
    try {
      for await (const entry of handle) {
        if (++entries > entryBudget) return { images, capped: true };
        if (entry.isDirectory()) {
          const child = path.join(dir, entry.name);
          if (!skipped(entry.name) && !exclude.includes(child)) pending.push(child);
        } else if ((entry.isFile() || entry.isSymbolicLink()) && isImageFile(entry.name)) {
          if (++images >= cap) return { images, capped: true };
        }
      }
    } finally {
      // A `for await` that returns early closes the handle itself; closing again throws.
      await handle.close().catch(() => undefined);
    }
  }
  return { images, capped: false };
}

async function subfolders(folder: string, exclude: string[]): Promise<string[]> {
  try {
    const entries = await fs.readdir(folder, { withFileTypes: true });
    return entries
      .filter((entry) => entry.isDirectory() && !skipped(entry.name))
      .map((entry) => path.join(folder, entry.name))
      .filter((child) => !exclude.includes(child))
      .sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
  } catch {
    return [];
  }
}

/**
 * The folders worth training on, each workspace folder first, then its subfolders (depth first, by name), each with
 * its image count. A folder whose images all sit in one subfolder is the same choice as that subfolder, and only
 * the subfolder is kept (labels come from the first level of subfolders, so the deeper one is the better root).
 */
export async function imageFolderCandidates(workspaceFolders: string[], options: CandidateOptions = {}): Promise<ImageFolder[]> {
  const cap = options.imageCap ?? imageCountCap;
  const budget = options.entryBudget ?? 200_000;
  const maxDepth = options.maxDepth ?? 2;
  const exclude = (options.exclude ?? []).map((folder) => path.resolve(folder));
  const maxCandidates = options.maxCandidates ?? 40;
  const deadline = Date.now() + (options.timeBudgetMs ?? 3000);
  const found: ImageFolder[] = [];

  const visit = async (folder: string, depth: number, isRoot: boolean): Promise<ImageFolder | undefined> => {
    // A workspace folder is always counted; deeper ones while there is time and room.
    if (!isRoot && (found.length >= maxCandidates || Date.now() > deadline)) return undefined;
    const counted = await countImages(folder, cap, budget, exclude);
    if (counted.images === 0) return undefined;
    const entry: ImageFolder = { folder, ...counted, isRoot };
    const at = found.push(entry) - 1;
    if (depth >= maxDepth) return entry;
    const children: ImageFolder[] = [];
    for (const child of await subfolders(folder, exclude)) {
      const counted = await visit(child, depth + 1, false);
      if (counted) children.push(counted);
    }
    // All of this folder's images are in its one image-holding child: offer the child only.
    if (children.length === 1 && !entry.capped && children[0].images === entry.images) found.splice(at, 1);
    return entry;
  };

  for (const root of workspaceFolders) await visit(path.resolve(root), 0, true);
  return found;
}

/** "1,234 images", "1 image", "10,000+ images". */
export function describeImageCount(folder: Pick<ImageFolder, 'images' | 'capped'>): string {
  const count = folder.images.toLocaleString('en');
  return `${count}${folder.capped ? '+' : ''} image${folder.images === 1 && !folder.capped ? '' : 's'}`;
}

/**
 * The folder to offer training on for an image when there is no run: its first-level folder under the workspace
 * folder that holds it (a dataset's root, not one class of it), or the workspace folder for an image at its top.
 */
export function trainingFolderFor(image: string, workspaceFolders: string[]): string {
  const absolute = path.resolve(image);
  for (const root of workspaceFolders.map((folder) => path.resolve(folder))) {
    const relative = path.relative(root, absolute);
    if (relative.startsWith('..') || path.isAbsolute(relative)) continue;
    const parts = relative.split(path.sep);
    return parts.length > 1 ? path.join(root, parts[0]) : root;
  }
  return path.dirname(absolute);
}
