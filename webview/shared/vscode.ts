// The webview side of messaging: a typed wrapper over acquireVsCodeApi, and theme colours.
import type { FromWebview } from '../../src/protocol/webview';

interface VsCodeApi<State> {
  postMessage(message: FromWebview): void;
  getState(): State | undefined;
  setState(state: State): void;
}

declare function acquireVsCodeApi<State>(): VsCodeApi<State>;

export function connect<State, Incoming>(onMessage: (message: Incoming) => void): VsCodeApi<State> {
  const api = acquireVsCodeApi<State>();
  window.addEventListener('message', (event: MessageEvent<Incoming>) => onMessage(event.data));
  return api;
}

/** A `--vscode-*` theme colour, with a fallback for when the variable is missing. */
export function themeColor(name: string, fallback: string): string {
  return getComputedStyle(document.body).getPropertyValue(`--vscode-${name}`).trim() || fallback;
}

/** The chart palette of the current theme, for clusters and series. */
export function chartPalette(): string[] {
  return [
    themeColor('charts-blue', '#3794ff'),
    themeColor('charts-orange', '#d18616'),
    themeColor('charts-green', '#89d185'),
    themeColor('charts-red', '#f14c4c'),
    themeColor('charts-purple', '#b180d7'),
    themeColor('charts-yellow', '#cca700'),
  ];
}

export function element<K extends keyof HTMLElementTagNameMap>(tag: K, attributes: Record<string, string> = {}, text?: string): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  if (text !== undefined) node.textContent = text;
  return node;
}
