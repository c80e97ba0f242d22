// Typed messaging between a webview and the extension host; panels build on this.
import type { EngineEvent } from '../../src/protocol';

interface VsCodeApi<State> {
  postMessage(message: unknown): void;
  getState(): State | undefined;
  setState(state: State): void;
}

declare function acquireVsCodeApi<State>(): VsCodeApi<State>;

/** Messages a panel receives: engine events forwarded by the host. */
export type ToWebview = { type: 'engine'; event: EngineEvent };

export function connect<State>(onMessage: (message: ToWebview) => void): VsCodeApi<State> {
  const api = acquireVsCodeApi<State>();
  window.addEventListener('message', (event: MessageEvent<ToWebview>) => onMessage(event.data));
  return api;
}
