// Starts the engine as a child process and matches its events to requests by id.
// Kept free of `vscode` so that the CLI and unit tests use the same client as the extension.
import { fork, type ChildProcess } from 'node:child_process';
import type { EngineEvent, EngineRequest, ErrorCode, ErrorEvent, LogEvent, ProgressEvent, ResultOf, WorkRequest } from '../protocol/engine';

export interface EngineClientOptions {
  /** The engine bundle (dist/engine.js). */
  enginePath: string;
  /** A `node` to run the engine with; default: the current runtime. */
  nodePath?: string;
  env?: NodeJS.ProcessEnv;
  /** Start a fresh engine after a crash (default true). */
  restartOnCrash?: boolean;
  onLog?: (event: LogEvent) => void;
  /** Called once per crash, with what the engine left on stderr. */
  onCrash?: (message: string) => void;
}

export interface RequestHandlers {
  onProgress?: (event: ProgressEvent) => void;
  onLog?: (event: LogEvent) => void;
  signal?: AbortSignal;
}

/** An engine failure, with the protocol's error code and a message for the user. */
export class EngineRequestError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly detail?: string,
  ) {
    super(message);
    this.name = 'EngineRequestError';
  }
}

interface Pending {
  resolve: (value: unknown) => void;
  reject: (error: EngineRequestError) => void;
  handlers: RequestHandlers;
}

type NewRequest<T extends WorkRequest['type']> = Omit<Extract<WorkRequest, { type: T }>, 'id'>;

export class EngineClient {
  private child: ChildProcess | undefined;
  private ready: Promise<void> | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private stderrTail = '';
  private disposed = false;

  constructor(private readonly options: EngineClientOptions) {}

  /** Sends a work request; resolves with its result, rejects with an EngineRequestError. */
  async request<T extends WorkRequest['type']>(request: NewRequest<T> & { type: T }, handlers: RequestHandlers = {}): Promise<ResultOf[T]> {
    if (this.disposed) throw new EngineRequestError('ENGINE_CRASHED', 'The engine has been shut down.');
    const id = this.nextId++;
    const result = new Promise<ResultOf[T]>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (value: unknown) => void, reject, handlers });
    });
    const onAbort = () => void this.cancel(id);
    handlers.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      await this.start();
      this.send({ ...request, id } as EngineRequest);
      if (handlers.signal?.aborted) onAbort();
      return await result;
    } finally {
      this.pending.delete(id);
      handlers.signal?.removeEventListener('abort', onAbort);
    }
  }

  /** Asks the engine to stop a request; the request then ends with its own result or a CANCELLED error. */
  async cancel(targetId: number): Promise<void> {
    if (!this.child) return;
    this.send({ type: 'cancel', id: this.nextId++, targetId });
  }

  /** Starts the engine if it is not running; requests sent meanwhile wait for it. */
  start(): Promise<void> {
    if (this.ready) return this.ready;
    this.stderrTail = '';
    const child = fork(this.options.enginePath, [], {
      execPath: this.options.nodePath || process.execPath,
      env: { ...process.env, ...this.options.env },
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
      serialization: 'advanced',
    });
    this.child = child;
    child.stderr?.on('data', (chunk: Buffer) => {
      this.stderrTail = (this.stderrTail + chunk.toString()).slice(-4000);
    });
    this.ready = new Promise<void>((resolve, reject) => {
      const onReady = (event: EngineEvent) => {
        if (event.type === 'ready') {
          child.off('message', onReady);
          resolve();
        }
      };
      child.on('message', onReady);
      child.once('error', (error) => reject(new EngineRequestError('ENGINE_CRASHED', `The engine could not start: ${error.message}. Check the engine runtime setting (a path to node).`)));
      child.once('exit', (code) => reject(new EngineRequestError('ENGINE_CRASHED', `The engine exited while starting (code ${code}). ${this.stderrTail.trim()}`)));
    });
    this.ready.catch(() => undefined);
    child.on('message', (event: EngineEvent) => this.dispatch(event));
    child.on('exit', (code, signal) => this.onExit(child, code, signal));
    return this.ready;
  }

  /** Asks the engine to finish (saving any checkpoint) and waits for it to exit. */
  async dispose(timeoutMs = 10_000): Promise<void> {
    this.disposed = true;
    const child = this.child;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    this.send({ type: 'shutdown', id: this.nextId++ });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    await exited;
    clearTimeout(timer);
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  private send(request: EngineRequest): void {
    if (this.child?.connected) this.child.send(request);
  }

  private dispatch(event: EngineEvent): void {
    switch (event.type) {
      case 'progress':
        this.pending.get(event.id)?.handlers.onProgress?.(event);
        return;
      case 'log': {
        const handler = event.id !== undefined ? this.pending.get(event.id)?.handlers.onLog : undefined;
        if (handler) handler(event);
        else this.options.onLog?.(event);
        return;
      }
      case 'result':
        this.pending.get(event.id)?.resolve(event.result);
        return;
      case 'error':
        if (event.id !== undefined && this.pending.has(event.id)) this.pending.get(event.id)!.reject(toRequestError(event));
        else this.options.onLog?.({ type: 'log', level: 'error', message: `${event.code}: ${event.message}${event.detail ? `\n${event.detail}` : ''}` });
        return;
      case 'ready':
        return;
    }
  }

  private onExit(child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (child !== this.child) return;
    this.child = undefined;
    this.ready = undefined;
    if (this.disposed && this.pending.size === 0) return;
    const reason = `The engine stopped unexpectedly (${signal ?? `exit code ${code}`}).${this.stderrTail.trim() ? ` Last output: ${this.stderrTail.trim().split('\n').slice(-3).join(' ')}` : ''} Completed checkpoints and indexes are kept.`;
    for (const pending of this.pending.values()) pending.reject(new EngineRequestError('ENGINE_CRASHED', reason));
    this.pending.clear();
    this.options.onCrash?.(reason);
    // The next request starts a fresh engine; nothing runs until someone asks.
    if (this.options.restartOnCrash === false) this.disposed = true;
  }
}

function toRequestError(event: ErrorEvent): EngineRequestError {
  return new EngineRequestError(event.code, event.message, event.detail);
}
