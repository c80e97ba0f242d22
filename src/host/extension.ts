// The extension host: commands, the engine client, the status bar, and the panels.
import { existsSync } from 'node:fs';
import path from 'node:path';
import * as vscode from 'vscode';
import type { BackendPreference, ExplainPanelState, TrainingRuntimePreference, TrainResult } from '../protocol';
import { EngineClient, EngineRequestError } from './engineClient';
import { engineEnvironment, isImageFile, listRuns, newRunName, runsRoot, trainOptionsFromSettings } from './runs';
import { ClusterMapPanel } from './views/clusterMapPanel';
import { ClustersView } from './views/clustersView';
import { DashboardPanel } from './views/dashboardPanel';
import { ExplainPanel } from './views/explainPanel';

/** What the commands and views share: the engine, the current run, the output channel. */
export interface Session {
  readonly extensionUri: vscode.Uri;
  readonly engine: EngineClient;
  readonly output: vscode.LogOutputChannel;
  /** The run the views show: the last trained or opened, else the newest on disk. */
  currentRun(): Promise<string | undefined>;
  setCurrentRun(runDir: string): void;
}

let engine: EngineClient | undefined;
let training: AbortController | undefined;

export function activate(context: vscode.ExtensionContext): void {
  const output = vscode.window.createOutputChannel('Cluster Lens', { log: true });
  const config = () => vscode.workspace.getConfiguration('clusterLens');
  engine = new EngineClient({
    enginePath: path.join(context.extensionPath, 'dist', 'engine.js'),
    nodePath: config().get<string>('engineRuntime') || undefined,
    env: engineEnvironment(config().get<number>('engineThreads')),
    onLog: (event) => output[event.level === 'warn' ? 'warn' : event.level](event.message),
    onCrash: (message) => {
      output.error(message);
      void vscode.window.showErrorMessage(`Cluster Lens: ${message} The engine restarts with the next request.`);
    },
  });
  let currentRunDir: string | undefined = context.workspaceState.get<string>('clusterLens.currentRun');
  const runsFolder = () => runsRoot(config().get<string>('runsFolder') ?? '', vscode.workspace.workspaceFolders?.[0]?.uri.fsPath, context.globalStorageUri.fsPath);
  const session: Session = {
    extensionUri: context.extensionUri,
    engine,
    output,
    async currentRun() {
      if (currentRunDir && existsSync(path.join(currentRunDir, 'run.json'))) return currentRunDir;
      return (await listRuns(runsFolder()))[0]?.runDir;
    },
    setCurrentRun(runDir) {
      currentRunDir = runDir;
      void context.workspaceState.update('clusterLens.currentRun', runDir);
      void clusters.refresh();
    },
  };

  const status = vscode.window.createStatusBarItem(vscode.StatusBarAlignment.Left, 10);
  status.name = 'Cluster Lens training';
  status.command = 'clusterLens.showDashboard';
  const clusters = new ClustersView(session);

  const requireTrust = (action: string): boolean => {
    if (vscode.workspace.isTrusted) return true;
    void vscode.window.showWarningMessage(`Cluster Lens: ${action} runs code and loads models, which an untrusted workspace does not allow. Trust the workspace to continue; browsing runs still works.`);
    return false;
  };

  const train = async (folder?: vscode.Uri) => {
    if (!requireTrust('Training')) return;
    if (training) {
      void vscode.window.showInformationMessage('Cluster Lens is already training. Cancel it first (Cluster Lens: Cancel Training).');
      return;
    }
    const imagesUri =
      folder ??
      (await vscode.window.showOpenDialog({ canSelectFolders: true, canSelectFiles: false, defaultUri: vscode.workspace.workspaceFolders?.[0]?.uri, openLabel: 'Train on this folder' }))?.[0];
    if (!imagesUri) return;
    const imagesDir = imagesUri.fsPath;
    const runDir = path.join(runsFolder(), newRunName(imagesDir));
    const options = trainOptionsFromSettings({
      backend: config().get<BackendPreference>('backend'),
      trainingRuntime: config().get<TrainingRuntimePreference>('trainingRuntime'),
      imageSizePx: config().get<number>('imageSizePx'),
      prototypes: config().get<number>('prototypes'),
      epochs: config().get<number>('epochs'),
      minutes: config().get<number>('minutes'),
    });
    const dashboard = DashboardPanel.show(context.extensionUri);
    dashboard.post({ type: 'dashboard.reset', runName: path.basename(runDir), history: [] });
    training = new AbortController();
    const signal = training.signal;
    status.text = '$(sync~spin) Cluster Lens: starting';
    status.show();
    void vscode.commands.executeCommand('setContext', 'clusterLens.training', true);
    try {
      const result: TrainResult = await vscode.window.withProgress(
        { location: vscode.ProgressLocation.Notification, title: 'Cluster Lens: training', cancellable: true },
        (progress, token) => {
          token.onCancellationRequested(() => training?.abort());
          let reported = 0;
          return engine!.request(
            { type: 'train', imagesDir, runDir, options },
            {
              signal,
              onLog: (event) => output[event.level === 'warn' ? 'warn' : event.level](event.message),
              onProgress: (event) => {
                DashboardPanel.post({ type: 'dashboard.progress', event });
                const increment = Math.max(0, event.fraction * 100 - reported);
                reported += increment;
                const detail = event.loss !== undefined ? `epoch ${event.epoch}/${event.epochs}, loss ${event.loss.toFixed(3)}` : event.message;
                progress.report({ increment, message: detail });
                status.text = event.loss !== undefined ? `$(sync~spin) epoch ${event.epoch}/${event.epochs} · loss ${event.loss.toFixed(3)}` : `$(sync~spin) Cluster Lens: ${event.phase}`;
              },
            },
          );
        },
      );
      const summary = `${result.cancelled ? 'Cancelled' : 'Trained'} on ${result.images} images (${result.backend}), ${result.steps} steps, final loss ${result.finalLoss.toFixed(3)}${result.skipped.length ? `; ${result.skipped.length} files skipped (see the log)` : ''}.`;
      DashboardPanel.post({ type: 'dashboard.finished', summary, failed: false });
      session.setCurrentRun(result.runDir);
      status.text = `$(check) Cluster Lens · ${result.backend} · loss ${result.finalLoss.toFixed(3)}`;
      const choice = await vscode.window.showInformationMessage(`Cluster Lens: ${summary}`, 'Show Cluster Map');
      if (choice) await vscode.commands.executeCommand('clusterLens.showClusterMap');
    } catch (error) {
      const message = error instanceof EngineRequestError ? error.message : String(error);
      DashboardPanel.post({ type: 'dashboard.finished', summary: message, failed: true });
      status.text = '$(error) Cluster Lens: training failed';
      void vscode.window.showErrorMessage(`Cluster Lens: ${message}`);
    } finally {
      training = undefined;
      void vscode.commands.executeCommand('setContext', 'clusterLens.training', false);
    }
  };

  const explain = async (uri?: vscode.Uri) => {
    if (!requireTrust('Explaining')) return;
    const target = uri ?? vscode.window.activeTextEditor?.document.uri ?? (vscode.window.tabGroups.activeTabGroup.activeTab?.input as { uri?: vscode.Uri } | undefined)?.uri;
    if (!target || !isImageFile(target.fsPath)) {
      void vscode.window.showWarningMessage('Cluster Lens: right-click an image file in the explorer and choose "Explain cluster".');
      return;
    }
    const runDir = await session.currentRun();
    if (!runDir) {
      void vscode.window.showWarningMessage('Cluster Lens: there is no trained run yet. Run "Cluster Lens: Train Model…" first.');
      return;
    }
    await ExplainPanel.show(session, runDir, target.fsPath);
  };

  const openRun = async () => {
    const runs = await listRuns(runsFolder());
    const picked = await vscode.window.showQuickPick(
      [
        ...runs.map((run) => ({ label: run.name, description: `${run.images} images${run.hasIndex ? '' : ', no index'}`, detail: run.imagesDir, runDir: run.runDir })),
        { label: '$(folder-opened) Browse…', description: 'a run folder elsewhere', runDir: '' },
      ],
      { placeHolder: runs.length ? 'Open a Cluster Lens run' : `No runs in ${runsFolder()} yet` },
    );
    if (!picked) return;
    let runDir = picked.runDir;
    if (!runDir) {
      const folder = await vscode.window.showOpenDialog({ canSelectFolders: true, canSelectFiles: false, openLabel: 'Open run' });
      if (!folder?.[0]) return;
      runDir = folder[0].fsPath;
    }
    if (!existsSync(path.join(runDir, 'run.json'))) {
      void vscode.window.showErrorMessage(`Cluster Lens: ${runDir} is not a run folder (no run.json). Pick a folder made by training.`);
      return;
    }
    session.setCurrentRun(runDir);
    await ClusterMapPanel.show(session, runDir);
  };

  context.subscriptions.push(
    output,
    status,
    vscode.commands.registerCommand('clusterLens.train', (folder?: vscode.Uri) => train(folder)),
    vscode.commands.registerCommand('clusterLens.cancelTraining', () => {
      if (training) training.abort();
      else void vscode.window.showInformationMessage('Cluster Lens is not training.');
    }),
    vscode.commands.registerCommand('clusterLens.showDashboard', () => DashboardPanel.show(context.extensionUri)),
    vscode.commands.registerCommand('clusterLens.showClusterMap', async () => {
      const runDir = await session.currentRun();
      if (!runDir) void vscode.window.showWarningMessage('Cluster Lens: there is no trained run yet. Run "Cluster Lens: Train Model…" first.');
      else await ClusterMapPanel.show(session, runDir);
    }),
    vscode.commands.registerCommand('clusterLens.explainCluster', (uri?: vscode.Uri) => explain(uri)),
    vscode.commands.registerCommand('clusterLens.openRun', openRun),
    vscode.commands.registerCommand('clusterLens.exportOnnx', async () => {
      if (!requireTrust('Exporting a model')) return;
      const runDir = await session.currentRun();
      if (!runDir) {
        void vscode.window.showWarningMessage('Cluster Lens: there is no trained run to export yet. Run "Cluster Lens: Train Model…" first.');
        return;
      }
      const target = await vscode.window.showSaveDialog({ defaultUri: vscode.Uri.file(path.join(runDir, 'model.onnx')), filters: { ONNX: ['onnx'] }, saveLabel: 'Export' });
      if (!target) return;
      try {
        const result = await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: 'Cluster Lens: exporting to ONNX' }, () =>
          engine!.request({ type: 'exportOnnx', runDir, outPath: target.fsPath }),
        );
        void vscode.window.showInformationMessage(
          `Cluster Lens: wrote ${path.basename(result.outPath)} (opset ${result.opset}). Input images [N, ${result.channels}, ${result.imageSizePx}, ${result.imageSizePx}] in [0, 1]; outputs embedding, prototype_scores, features.`,
        );
      } catch (error) {
        void vscode.window.showErrorMessage(`Cluster Lens: ${error instanceof EngineRequestError ? error.message : String(error)}`);
      }
    }),
    vscode.window.registerWebviewViewProvider(ClustersView.viewType, clusters),
    vscode.window.registerWebviewPanelSerializer(DashboardPanel.viewType, {
      deserializeWebviewPanel: async (panel) => DashboardPanel.revive(panel, context.extensionUri),
    }),
    vscode.window.registerWebviewPanelSerializer(ClusterMapPanel.viewType, {
      deserializeWebviewPanel: async (panel) => ClusterMapPanel.revive(session, panel),
    }),
    vscode.window.registerWebviewPanelSerializer(ExplainPanel.viewType, {
      deserializeWebviewPanel: async (panel, state: ExplainPanelState | undefined) => ExplainPanel.revive(session, panel, state),
    }),
    vscode.window.onDidChangeActiveTextEditor(() => void clusters.showNeighboursOfActiveImage()),
    vscode.window.tabGroups.onDidChangeTabs(() => void clusters.showNeighboursOfActiveImage()),
    { dispose: () => void engine?.dispose() },
  );
}

export async function deactivate(): Promise<void> {
  training?.abort();
  await engine?.dispose();
}
