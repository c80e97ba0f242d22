// The extension host side. The full UI (dashboards, gallery, explain panel) builds on this client.
import path from 'node:path';
import * as vscode from 'vscode';
import { EngineClient, EngineRequestError } from './engineClient';
import { DashboardPanel } from './views/dashboardPanel';

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
    vscode.commands.registerCommand('clusterLens.train', () => trainCommand(output, context.extensionUri)),
    vscode.commands.registerCommand('clusterLens.cancelTraining', () => training?.abort()),
    vscode.commands.registerCommand('clusterLens.showDashboard', () => DashboardPanel.show(context.extensionUri)),
    vscode.window.registerWebviewPanelSerializer(DashboardPanel.viewType, {
      deserializeWebviewPanel: async (panel) => DashboardPanel.revive(panel, context.extensionUri),
    }),
    { dispose: () => void client?.dispose() },
  );
}

async function trainCommand(output: vscode.LogOutputChannel, extensionUri: vscode.Uri): Promise<void> {
  if (!client) return;
  if (training) {
    void vscode.window.showInformationMessage('Cluster Lens is already training. Cancel it first.');
    return;
  }
  const folder = vscode.workspace.workspaceFolders?.[0];
  const picked = await vscode.window.showOpenDialog({ canSelectFolders: true, canSelectFiles: false, defaultUri: folder?.uri, openLabel: 'Train on this folder' });
  if (!picked?.[0]) return;
  const dashboard = DashboardPanel.show(extensionUri);
  const imagesDir = picked[0].fsPath;
  const runDir = path.join(folder?.uri.fsPath ?? imagesDir, '.cluster-lens', new Date().toISOString().replace(/[:.]/g, '-'));
  dashboard.post({ type: 'dashboard.reset', runName: path.basename(imagesDir), history: [] });
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
              DashboardPanel.post({ type: 'dashboard.progress', event });
              const increment = Math.max(0, event.fraction * 100 - reported);
              reported += increment;
              const detail = event.loss !== undefined ? `epoch ${event.epoch}/${event.epochs}, loss ${event.loss.toFixed(3)}` : event.message;
              progress.report({ increment, message: detail });
            },
          },
        );
      },
    );
    const summary = `${result.cancelled ? 'Cancelled' : 'Trained'} on ${result.images} images (${result.backend}), final loss ${result.finalLoss.toFixed(3)}. Run saved in ${result.runDir}.`;
    DashboardPanel.post({ type: 'dashboard.finished', summary, failed: false });
    void vscode.window.showInformationMessage(`Cluster Lens: ${summary}`);
  } catch (error) {
    const message = error instanceof EngineRequestError ? error.message : String(error);
    DashboardPanel.post({ type: 'dashboard.finished', summary: message, failed: true });
    void vscode.window.showErrorMessage(`Cluster Lens: ${message}`);
  } finally {
    training = undefined;
  }
}

export async function deactivate(): Promise<void> {
  await client?.dispose();
}
