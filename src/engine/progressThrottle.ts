// Progress reaches the host at most every `intervalMs`, but never loses the last update of a phase: a held update
// goes out before the next phase's first, and when the job ends (the last training step before indexing, say).
import type { ProgressEvent } from '../protocol/engine';

export type ProgressUpdate = Omit<ProgressEvent, 'type' | 'id'>;

export interface ProgressThrottle {
  progress(update: ProgressUpdate): void;
  /** Sends the update held back, if any. */
  flush(): void;
}

export function throttleProgress(send: (update: ProgressUpdate) => void, intervalMs: number, now: () => number = Date.now): ProgressThrottle {
  let lastSentMs = -Infinity;
  let lastPhase: string | undefined;
  let held: ProgressUpdate | undefined;
  const emit = (update: ProgressUpdate) => {
    held = undefined;
    lastSentMs = now();
    lastPhase = update.phase;
    send(update);
  };
  const flush = () => {
    if (held) emit(held);
  };
  return {
    progress(update) {
      if (update.phase !== lastPhase) flush();
      if (update.phase !== lastPhase || update.fraction >= 1 || now() - lastSentMs >= intervalMs) emit(update);
      else held = update;
    },
    flush,
  };
}
