import type { LogLevel, ProgressEvent } from '../protocol/engine';
import { EngineError } from './errors';

/** What a long job gets from whoever runs it: a cancel signal and a way to report. */
export interface JobContext {
  signal: AbortSignal;
  progress(update: Omit<ProgressEvent, 'type' | 'id'>): void;
  log(level: LogLevel, message: string): void;
}

export function throwIfCancelled(signal: AbortSignal): void {
  if (signal.aborted) throw new EngineError('CANCELLED', 'Cancelled.');
}

/** Lets queued messages (a cancel, say) in between steps of synchronous tensor work. */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** A context that reports nowhere, for tests and library use. */
export function silentContext(signal: AbortSignal = new AbortController().signal): JobContext {
  return { signal, progress: () => undefined, log: () => undefined };
}
