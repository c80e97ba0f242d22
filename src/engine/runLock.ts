// A run folder has one writer: every job that writes a run (train, index) holds `.lock` in it while it runs. The
// lock names its owner (pid, host, start time, job); a second writer is refused with RUN_BUSY naming them, and a
// lock whose process is gone (on this host) is taken over, with a log line. Taking the lock also cleans the temp
// files that a killed atomic save left behind.
import { randomUUID } from 'node:crypto';
import { existsSync, promises as fs, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { LogLevel } from '../protocol/engine';
import { EngineError } from './errors';
import { temporaryFileOwner } from './util/atomicFile';

export const runLockFileName = '.lock';

/** What `.lock` holds. */
export interface RunLockOwner {
  pid: number;
  hostname: string;
  /** ISO time the lock was taken. */
  startedAt: string;
  /** What holds it: "train", "train --resume", "index". */
  job: string;
  /** Tells this holder's lock from a later one at release. */
  token: string;
}

export interface RunLock {
  readonly runDir: string;
  readonly owner: RunLockOwner;
  /** Removes the lock if it is still this one's (and the run folder, when taking the lock made it and nothing was written). */
  release(): Promise<void>;
}

type Log = (level: LogLevel, message: string) => void;

/** A lock file younger than this that cannot be read yet is one being written right now, not a stale one. */
const unreadableGraceMs = 10_000;

export function runLockPath(runDir: string): string {
  return path.join(runDir, runLockFileName);
}

/**
 * Takes `runDir`'s lock for `job`, creating the folder if needed; RUN_BUSY when a live process holds it. Leftover
 * temp files of killed saves in the folder are removed once the lock is held.
 */
export async function acquireRunLock(runDir: string, job: string, log: Log = () => undefined): Promise<RunLock> {
  const folder = path.resolve(runDir);
  const created = !existsSync(folder);
  await fs.mkdir(folder, { recursive: true });
  const file = runLockPath(folder);
  const owner: RunLockOwner = { pid: process.pid, hostname: os.hostname(), startedAt: new Date().toISOString(), job, token: randomUUID() };
  const text = JSON.stringify(owner, null, 2);
  for (let attempt = 0; ; attempt++) {
    try {
      const handle = await fs.open(file, 'wx', 0o644);
      try {
        await handle.writeFile(text);
      } catch (error) {
        // A full disk, say: no half-written lock stays behind to block the next job.
        await handle.close();
        await fs.rm(file, { force: true });
        throw error;
      }
      await handle.close();
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const held = await readLock(file);
    if (held === undefined) continue; // released in between: try again
    if (!held.owner && Date.now() - held.modifiedMs < unreadableGraceMs && attempt < 40) {
      // Just created by another job that is writing its owner into it now: read it again shortly.
      await new Promise((resolve) => setTimeout(resolve, 25));
      continue;
    }
    const stale = staleReason(held);
    if (!stale || attempt >= 45) throw busyError(folder, held);
    if (await removeIfUnchanged(file, held.raw)) {
      log('warn', `Took over the lock of ${folder}: ${stale}.`);
    }
  }
  await removeLeftoverTemporaryFiles(folder, Date.parse(owner.startedAt), log);
  let released = false;
  return {
    runDir: folder,
    owner,
    async release() {
      if (released) return;
      released = true;
      const held = await readLock(file);
      if (held?.owner?.token === owner.token) await fs.rm(file, { force: true });
      // A job that failed before writing anything leaves no empty folder behind.
      if (created) await fs.rmdir(folder).catch(() => undefined);
    },
  };
}

/** Runs `work` holding `runDir`'s lock, and releases it however `work` ends (result, error, cancel). */
export async function withRunLock<T>(runDir: string, job: string, log: Log, work: () => Promise<T>): Promise<T> {
  const lock = await acquireRunLock(runDir, job, log);
  try {
    return await work();
  } finally {
    await lock.release();
  }
}

/**
 * Whether the process `pid` is alive on this host (EPERM: alive, someone else's). A zombie (killed, not yet reaped:
 * for good in a container whose first process reaps nothing) is not.
 */
export function processAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  return !/^[ZX]$/.test(processStat(pid)?.[0] ?? '');
}

/** The fields of /proc/<pid>/stat after the command (from the state on), where there is one (Linux). */
function processStat(pid: number): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

interface HeldLock {
  raw: string;
  /** Absent when the file is not a lock Cluster Lens wrote (empty, cut short, edited). */
  owner?: RunLockOwner;
  modifiedMs: number;
}

async function readLock(file: string): Promise<HeldLock | undefined> {
  try {
    const [raw, stat] = await Promise.all([fs.readFile(file, 'utf8'), fs.stat(file)]);
    return { raw, owner: parseOwner(raw), modifiedMs: stat.mtimeMs };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

function parseOwner(raw: string): RunLockOwner | undefined {
  try {
    const value = JSON.parse(raw) as Partial<RunLockOwner>;
    if (typeof value.pid === 'number' && typeof value.hostname === 'string' && typeof value.startedAt === 'string') {
      return { pid: value.pid, hostname: value.hostname, startedAt: value.startedAt, job: String(value.job ?? 'a job'), token: String(value.token ?? '') };
    }
  } catch {
    // not JSON
  }
  return undefined;
}

/** Why a held lock is stale (its process is gone), or undefined when its holder may still be running. */
function staleReason(held: HeldLock): string | undefined {
  const { owner } = held;
  if (!owner) {
    if (Date.now() - held.modifiedMs < unreadableGraceMs) return undefined;
    return `its ${runLockFileName} was unreadable (${JSON.stringify(held.raw.slice(0, 80))})`;
  }
  // A process on another machine (a shared folder) cannot be checked from here: it counts as running.
  if (owner.hostname !== os.hostname()) return undefined;
  const holder = `process ${owner.pid} (${owner.job}, started ${owner.startedAt})`;
  if (!processAlive(owner.pid)) return `${holder} held it and is no longer running`;
  // The pid lives, but a process that started well after the lock was taken (a margin for clock steps) is not its
  // holder: the pid was reused.
  const started = processStartMs(owner.pid);
  const lockedAt = Date.parse(owner.startedAt);
  if (started !== undefined && Number.isFinite(lockedAt) && started > lockedAt + 30_000) return `${holder} held it and is no longer running (its pid now belongs to a later process)`;
  return undefined;
}

/** When process `pid` started (ms since the epoch), where /proc says (Linux); undefined elsewhere. */
function processStartMs(pid: number): number | undefined {
  try {
    // Field 22 (starttime, in clock ticks since boot), counted from the state (field 3).
    const ticks = Number(processStat(pid)?.[19]);
    const bootSeconds = Number(/^btime (\d+)$/m.exec(readFileSync('/proc/stat', 'utf8'))?.[1]);
    // USER_HZ is 100 on every Linux architecture.
    return Number.isFinite(ticks) && Number.isFinite(bootSeconds) ? bootSeconds * 1000 + ticks * 10 : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Removes the stale lock unless someone replaced it since it was read: renamed aside first, so of two processes
 * taking over the same stale lock only one removes it, and a fresh lock renamed by mistake is put back.
 */
async function removeIfUnchanged(file: string, raw: string): Promise<boolean> {
  const aside = `${file}.stale-${process.pid}-${randomUUID()}`;
  try {
    await fs.rename(file, aside);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw error;
  }
  const moved = await fs.readFile(aside, 'utf8').catch(() => raw);
  if (moved !== raw) {
    // Another process took the stale lock over in between: its fresh lock goes back (unless yet another exists).
    await fs.link(aside, file).catch(() => undefined);
    await fs.rm(aside, { force: true });
    return false;
  }
  await fs.rm(aside, { force: true });
  return true;
}

function busyError(runDir: string, held: HeldLock): EngineError {
  const { owner } = held;
  const who = owner
    ? `${owner.job} in process ${owner.pid}${owner.hostname !== os.hostname() ? ` on ${owner.hostname}` : ''}, started ${owner.startedAt}`
    : `a job that is taking the lock right now`;
  return new EngineError(
    'RUN_BUSY',
    `The run folder ${runDir} is being written by another Cluster Lens job (${who}). Wait for it to finish or cancel it, or pick another folder. If no such process is running, delete ${runLockPath(runDir)}.`,
    held.raw,
  );
}

/** Temp files of atomic saves whose writer is gone (or is this process, from before it took the lock): a killed save's. */
async function removeLeftoverTemporaryFiles(runDir: string, lockedAt: number, log: Log): Promise<void> {
  const names = await fs.readdir(runDir).catch(() => [] as string[]);
  const removed: string[] = [];
  for (const name of names) {
    const writer = temporaryFileOwner(name);
    if (!writer) continue;
    const ours = writer.pid === process.pid;
    if (ours ? writer.startedAt >= lockedAt : processAlive(writer.pid)) continue;
    const file = path.join(runDir, name);
    const stat = await fs.lstat(file).catch(() => undefined);
    if (!stat?.isFile()) continue;
    await fs.rm(file, { force: true });
    removed.push(name);
  }
  if (removed.length) log('info', `Removed ${removed.length} unfinished save(s) left in ${runDir} by a stopped process: ${removed.join(', ')}.`);
}
