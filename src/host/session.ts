// What the panels and views share of the extension: the engine, the log, and the run they show.
import type * as vscode from 'vscode';
import type { EngineClient } from './engineClient';

export interface Session {
  readonly extensionUri: vscode.Uri;
  readonly engine: EngineClient;
  readonly output: vscode.LogOutputChannel;
  /** The run the views show: the last trained or opened, else the newest on disk. */
  currentRun(): Promise<string | undefined>;
  setCurrentRun(runDir: string): void;
}
