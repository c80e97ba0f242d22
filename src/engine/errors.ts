import type { ErrorCode, ErrorEvent } from '../protocol/engine';

/** An error the user can act on: a stable code, a message saying what to do, and detail for the log. */
export class EngineError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly detail?: string,
  ) {
    super(message);
    this.name = 'EngineError';
  }
}

export function toErrorEvent(error: unknown, id?: number): ErrorEvent {
  if (error instanceof EngineError) {
    return { type: 'error', id, code: error.code, message: error.message, detail: error.detail };
  }
  const err = error instanceof Error ? error : new Error(String(error));
  // A full disk wherever a job wrote (an explanation's PNG, an export): say so, not "please report this".
  if (isDiskFull(err)) {
    return { type: 'error', id, code: 'DISK_FULL', message: `The disk is full: ${err.message}. Free some space and try again; completed checkpoints and indexes are kept.`, detail: err.stack };
  }
  return {
    type: 'error',
    id,
    code: 'INTERNAL',
    message: `The engine hit an unexpected error: ${err.message}. The run folder is unchanged; please report this with the log.`,
    detail: err.stack,
  };
}

/**
 * A run-folder file that is damaged or was changed outside Cluster Lens (BAD_RUN, or BAD_CHECKPOINT for the
 * checkpoint): the message names the file, the field, what is wrong with it and what to do.
 */
export function runFileError(file: string, field: string, problem: string, fix: string, code: ErrorCode = 'BAD_RUN'): EngineError {
  return new EngineError(code, `${file}: ${field} ${problem}. ${/[.!?]$/.test(fix) ? fix : `${fix}.`}`);
}

/** Whether a write failed because the disk (ENOSPC) or the user's quota (EDQUOT) is full. */
export function isDiskFull(error: unknown): boolean {
  if (error instanceof EngineError) return error.code === 'DISK_FULL';
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  // Native writers (usearch's save) report the C library's text rather than an errno code.
  return code === 'ENOSPC' || code === 'EDQUOT' || /\b(ENOSPC|EDQUOT)\b|No space left on device|Disk quota exceeded/i.test(String((error as Error | undefined)?.message ?? ''));
}
