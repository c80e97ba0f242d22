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
  return {
    type: 'error',
    id,
    code: 'INTERNAL',
    message: `The engine hit an unexpected error: ${err.message}. The run folder is unchanged; please report this with the log.`,
    detail: err.stack,
  };
}
