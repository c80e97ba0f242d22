// The extension host side. The full UI (dashboards, gallery, explain panel) builds on this client.
import path from 'node:path';
import * as vscode from 'vscode';
import { EngineClient, EngineRequestError } from './engineClient';

let client: EngineClient | undefined;
let training: AbortController | undefined;

export function activate(context: vscode.ExtensionContext): void {
  const output = vscode.window.createOutputChannel('Cluster Lens', { log: true });
  client = new EngineClient({
    enginePath: path.join(context.extensionPath, 'dist', 'engine.js'),
    onLog: (event) => output[event.level === 'warn' ? 'warn' : event.level](event.message),
    onCrash: (message) => void vscode.window.showErrorMessage(`Cluster Lens: ${message}`),
  });
  context.subscriptions.push(
    output,
    vscode.commands.registerCommand('clusterLens.train', () => trainCommand(output)),
    vscode.commands.registerCommand('clusterLens.cancelTraining', () => training?.abort()),
    { dispose: () => void client?.dispose() },
  );
}

async function trainCommand(output: vscode.LogOutputChannel): Promise<void> {
  if (!client) return;
  if (training) {
    void vscode.window.showInformationMessage('Cluster Lens is already training. Cancel it first.');
    return;
  }
  const folder = vscode.workspace.workspaceFolders?.[0];
  const picked = await vscode.window.showOpenDialog({ canSelectFolders: true, canSelectFiles: false, defaultUri: folder?.uri, openLabel: 'Train on this folder' });
  if (!picked?.[0]) return;
  const imagesDir = picked[0].fsPath;
  const runDir = path.join(folder?.uri.fsPath ?? imagesDir, '.cluster-lens', new Date().toISOString().replace(/[:.]/g, '-'));
  training = new AbortController();
  const signal = training.signal;
  try {
    const result = await vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title: 'Cluster Lens: training', cancellable: true },
      (progress, token) => {
        token.onCancellationRequested(() => training?.abort());
        let reported = 0;
        return client!.request(
          { type: 'train', imagesDir, runDir },
          {
            signal,
            onLog: (event) => output[event.level === 'warn' ? 'warn' : event.level](event.message),
            onProgress: (event) => {
              const increment = Math.max(0, event.fraction * 100 - reported);
              reported += increment;
              const detail = event.loss !== undefined ? `epoch ${event.epoch}/${event.epochs}, loss ${event.loss.toFixed(3)}` : event.message;
              progress.report({ increment, message: detail });
            },
          },
        );
      },
    );
    void vscode.window.showInformationMessage(`Cluster Lens: ${result.cancelled ? 'cancelled' : 'trained'} on ${result.images} images (${result.backend}). Run saved in ${result.runDir}.`);
  } catch (error) {
    const message = error instanceof EngineRequestError ? error.message : String(error);
    void vscode.window.showErrorMessage(`Cluster Lens: ${message}`);
  } finally {
    training = undefined;
  }
}

export async function deactivate(): Promise<void> {
  await client?.dispose();
}
