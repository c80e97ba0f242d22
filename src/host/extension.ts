// The extension host: commands, the engine client, the status bar, and the panels.
import { existsSync } from 'node:fs';
import path from 'node:path';
import * as vscode from 'vscode';
import type { BackboneNormalization } from '../protocol/options';
import type { TrainResult } from '../protocol/engine';
import type { ExplainPanelState } from '../protocol/webview';
import { EngineClient, EngineRequestError } from './engineClient';
import { chooseImage, chooseTrainingFolder } from './commands/chooseFolder';
import { trainingFolderFor } from './imageFolders';
import { describeProgress, stopReasonText } from './progressText';
import { engineEnvironment, isImageFile, listRuns, newRunName, readHealthHistory, readTrainingHistory, retiredSettingsMessage, runsRoot, trainOptionsFromSettings } from './runs';
import { ClusterMapPanel } from './views/clusterMapPanel';
import { ClustersView } from './views/clustersView';
import { DashboardPanel } from './views/dashboardPanel';
import { ExplainPanel } from './views/explainPanel';

/** What the commands and views share: the engine, the current run, the output channel. */

import type { Session } from './session';

let engine: EngineClient | undefined;
let training: AbortController | undefined;
/** The run being trained, for whoever waits on it (an explanation asked for before the first run existed). */
let trainingRun: Promise<TrainResult | undefined> | undefined;

export function activate(context: vscode.ExtensionContext): void {
  const output = vscode.window.createOutputChannel('Cluster Lens', { log: true });
  const config = () => vscode.workspace.getConfiguration('clusterLens');
  engine = new EngineClient({
    enginePath: path.join(context.extensionPath, 'dist', 'engine.js'),
    nodePath: config().get<string>('engineRuntime') || undefined,
    env: engineEnvironment(config().get<number>('engineThreads'), config().get<string>('device')),
    onLog: (event) => output[event.level === 'warn' ? 'warn' : event.level](event.message),
    onCrash: (message) => {
      output.error(message);
      void vscode.window.showErrorMessage(`Cluster Lens: ${message} The engine restarts with the next request.`);
    },
  });
  const retired = retiredSettingsMessage((setting) => {
    const found = config().inspect(setting);
    return [found?.globalValue, found?.workspaceValue, found?.workspaceFolderValue].some((value) => value !== undefined);
  });
  if (retired) {
    output.warn(retired);
    void vscode.window.showWarningMessage(`Cluster Lens: ${retired}`);
  }
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

  /** Trains on a folder (asking which, where none is given) and resolves with the run, or undefined where none was made. */
  const train = async (folder?: vscode.Uri): Promise<TrainResult | undefined> => {
    if (!requireTrust('Training')) return undefined;
    if (training) {
      const choice = await vscode.window.showInformationMessage('Cluster Lens is already training. Watch it on the dashboard, or cancel it to start another run.', 'Show Dashboard', 'Cancel Training');
      if (choice === 'Show Dashboard') DashboardPanel.show(context.extensionUri);
      else if (choice === 'Cancel Training') training?.abort();
      return undefined;
    }
    const imagesUri = folder ?? (await chooseTrainingFolder([runsFolder()]));
    if (!imagesUri || training) return undefined;
    const imagesDir = imagesUri.fsPath;
    const runDir = path.join(runsFolder(), newRunName(imagesDir));
    const options = trainOptionsFromSettings({
      imageSizePx: config().get<number>('imageSizePx'),
      prototypes: config().get<number>('prototypes'),
      epochs: config().get<number>('epochs'),
      minutes: config().get<number>('minutes'),
      backbone: config().get<string>('backbone'),
      backboneNormalization: config().get<BackboneNormalization>('backboneNormalization'),
      followLinks: config().get<boolean>('followLinks'),
    });
    const dashboard = DashboardPanel.show(context.extensionUri);
    dashboard.post({ type: 'dashboard.reset', runName: path.basename(runDir), history: [], folder: imagesDir });
    training = new AbortController();
    const signal = training.signal;
    // From the first moment to the index: the status bar says what is happening, and clicking it opens the dashboard.
    status.text = '$(sync~spin) Cluster Lens: starting the engine';
    status.tooltip = `Training on ${imagesDir}. Click for the dashboard.`;
    status.show();
    void vscode.commands.executeCommand('setContext', 'clusterLens.training', true);
    // Whoever waits for this run (an explanation asked for before any run existed) waits on this promise.
    const run = (async (): Promise<TrainResult | undefined> => {
      try {
        const result: TrainResult = await vscode.window.withProgress(
          { location: vscode.ProgressLocation.Notification, title: `Cluster Lens: training on ${path.basename(imagesDir)}`, cancellable: true },
          (progress, token) => {
            token.onCancellationRequested(() => training?.abort());
            progress.report({ message: 'starting the engine…' });
            let reported = 0;
            return engine!.request(
              { type: 'train', imagesDir, runDir, options },
              {
                signal,
                onLog: (event) => output[event.level === 'warn' ? 'warn' : event.level](event.message),
                onProgress: (event) => {
                  const text = describeProgress(event);
                  DashboardPanel.post({ type: 'dashboard.progress', event, headline: text.header });
                  const increment = Math.max(0, event.fraction * 100 - reported);
                  reported += increment;
                  progress.report({ increment, message: text.notification });
                  // The device in short on the bar, in full in its tooltip: "webgpu", "webgpu (NVIDIA H200, Vulkan)".
                  status.text = event.device ? `${text.status} · ${event.device.split(' (')[0]}` : text.status;
                  status.tooltip = `Cluster Lens is training on ${imagesDir}${event.device ? ` on ${event.device}` : ''}. Click for the dashboard.`;
                },
              },
            );
          },
        );
        const summary = `${result.cancelled ? 'Cancelled' : 'Trained'} on ${result.images} images on ${result.device ?? 'cpu'}${result.adapter ? ` (${result.adapter})` : ''}, ${result.steps} steps, final loss ${result.finalLoss.toFixed(3)}; stopped: ${stopReasonText(result)}${result.health && result.health.state !== 'converged' && result.health.state !== 'learning' ? `. ${result.health.advice}` : ''}${result.skipped.length ? `; ${result.skipped.length} files skipped (see the log)` : ''}.`;
        DashboardPanel.post({ type: 'dashboard.finished', summary, failed: false, history: await readTrainingHistory(result.runDir), epochs: result.epochs, healthHistory: await readHealthHistory(result.runDir) });
        session.setCurrentRun(result.runDir);
        status.text = `$(check) Cluster Lens · ${result.device ?? 'cpu'} · loss ${result.finalLoss.toFixed(3)}`;
        status.tooltip = `${summary} Click for the dashboard.`;
        // Not awaited: whoever started the run (Explain cluster, say) goes on while the toast waits for a click.
        void vscode.window.showInformationMessage(`Cluster Lens: ${summary}`, 'Show Cluster Map').then((choice) => choice && vscode.commands.executeCommand('clusterLens.showClusterMap'));
        return result;
      } catch (error) {
        const message = error instanceof EngineRequestError ? error.message : String(error);
        DashboardPanel.post({ type: 'dashboard.finished', summary: message, failed: true });
        status.text = '$(error) Cluster Lens: training failed';
        status.tooltip = message;
        void vscode.window.showErrorMessage(`Cluster Lens: ${message}`);
        return undefined;
      } finally {
        training = undefined;
        trainingRun = undefined;
        void vscode.commands.executeCommand('setContext', 'clusterLens.training', false);
      }
    })();
    trainingRun = run;
    return run;
  };

  const explain = async (uri?: vscode.Uri) => {
    if (!requireTrust('Explaining')) return;
    let target = uri ?? vscode.window.activeTextEditor?.document.uri ?? (vscode.window.tabGroups.activeTabGroup.activeTab?.input as { uri?: vscode.Uri } | undefined)?.uri;
    if (!target || !isImageFile(target.fsPath)) target = await chooseImage(`**/${path.basename(runsFolder())}/**`);
    if (!target) return;
    const image = target.fsPath;
    let runDir = await session.currentRun();
    if (!runDir && trainingRun) {
      // The first run is on its way: explain with it once it is done.
      void vscode.window.showInformationMessage(`Cluster Lens: ${path.basename(image)} is explained when the training now running is done.`);
      runDir = (await trainingRun)?.runDir;
      if (!runDir) return;
    }
    if (!runDir) {
      // No run yet: offer the one step that makes one, then explain the image with it.
      const workspaceFolders = (vscode.workspace.workspaceFolders ?? []).map((folder) => folder.uri.fsPath);
      const folder = trainingFolderFor(image, workspaceFolders);
      const trainHere = `Train on ${path.basename(folder)}`;
      const choice = await vscode.window.showInformationMessage(
        `Cluster Lens: explaining ${path.basename(image)} needs a trained model, and there is none yet. Train one on ${path.basename(folder)} (a few minutes, in the background); the image is explained when it is done.`,
        trainHere,
        'Choose Folder…',
      );
      if (!choice) return;
      const result = await train(choice === trainHere ? vscode.Uri.file(folder) : undefined);
      if (!result) return;
      runDir = result.runDir;
    }
    await ExplainPanel.show(session, runDir, image);
  };

  /** Every "there is no run" toast carries the two ways to get one. */
  const noRunYet = (what: string) => {
    void vscode.window
      .showInformationMessage(`Cluster Lens: ${what} needs a trained run, and there is none yet. Train one on a folder of images (a few minutes, in the background), or open a run trained earlier.`, 'Train Model…', 'Open Run…')
      .then((choice) => choice && vscode.commands.executeCommand(choice === 'Open Run…' ? 'clusterLens.openRun' : 'clusterLens.train'));
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
    vscode.commands.registerCommand('clusterLens.cancelTraining', async () => {
      if (!training) {
        void vscode.window.showInformationMessage('Cluster Lens is not training.');
        return;
      }
      // Asked first: "train" typed into the palette during a run lists this command too.
      const choice = await vscode.window.showWarningMessage('Cancel training? The checkpoint so far is saved and indexed, so the run stays usable. (A cancel while the run is being indexed stops the index; the checkpoint stays.)', { modal: true }, 'Cancel Training');
      if (choice) training?.abort();
    }),
    vscode.commands.registerCommand('clusterLens.showDashboard', async () => {
      const existed = DashboardPanel.isOpen();
      const dashboard = DashboardPanel.show(context.extensionUri);
      if (existed || training) return;
      // Not training: the dashboard shows the current run's curve, or (with no run) how to start one.
      const runDir = await session.currentRun();
      if (!runDir) return;
      const history = await readTrainingHistory(runDir);
      dashboard.post({ type: 'dashboard.reset', runName: path.basename(runDir), history });
      const last = history.at(-1);
      dashboard.post({ type: 'dashboard.finished', summary: last ? `Finished earlier: ${last.step} steps, last loss ${last.loss.toFixed(3)}.` : 'This run has no training history.', failed: false, history, healthHistory: await readHealthHistory(runDir) });
    }),
    vscode.commands.registerCommand('clusterLens.showClusterMap', async () => {
      const runDir = await session.currentRun();
      if (!runDir) noRunYet('The cluster map');
      else await ClusterMapPanel.show(session, runDir);
    }),
    vscode.commands.registerCommand('clusterLens.getStarted', () =>
      vscode.commands.executeCommand('workbench.action.openWalkthrough', `${context.extension.id}#clusterLens.gettingStarted`, false),
    ),
    vscode.commands.registerCommand('clusterLens.explainCluster', (uri?: vscode.Uri) => explain(uri)),
    vscode.commands.registerCommand('clusterLens.openRun', openRun),
    vscode.commands.registerCommand('clusterLens.exportOnnx', async () => {
      if (!requireTrust('Exporting a model')) return;
      const runDir = await session.currentRun();
      if (!runDir) {
        noRunYet('Exporting to ONNX');
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
    vscode.commands.registerCommand('clusterLens.exportAssignments', async () => {
      const runDir = await session.currentRun();
      if (!runDir) {
        noRunYet('Exporting cluster assignments');
        return;
      }
      const format = await vscode.window.showQuickPick(
        [
          { label: 'CSV', description: 'path, cluster, probability, label, map x/y, outlier score', format: 'csv' as const },
          { label: 'JSON', description: 'the same columns as objects', format: 'json' as const },
          { label: 'Parquet', description: 'the same columns, typed, for pandas, polars or DuckDB', format: 'parquet' as const },
        ],
        { title: 'Export Cluster Assignments', placeHolder: 'File format' },
      );
      if (!format) return;
      const target = await vscode.window.showSaveDialog({ defaultUri: vscode.Uri.file(path.join(runDir, `assignments.${format.format}`)), filters: { [format.label]: [format.format] }, saveLabel: 'Export' });
      if (!target) return;
      try {
        const result = await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: 'Cluster Lens: exporting cluster assignments' }, () =>
          engine!.request({ type: 'exportAssignments', runDir, format: format.format, outPath: target.fsPath }),
        );
        void vscode.window.showInformationMessage(`Cluster Lens: wrote ${result.rows} rows to ${path.basename(result.outPath)}.`);
      } catch (error) {
        void vscode.window.showErrorMessage(`Cluster Lens: ${error instanceof EngineRequestError ? error.message : String(error)}`);
      }
    }),
    // The side view keeps its page while another view has the sidebar: one small page, shown again at once with its
    // scroll position, and no reload to race the neighbours of an image opened meanwhile (seen blank under load).
    vscode.window.registerWebviewViewProvider(ClustersView.viewType, clusters, { webviewOptions: { retainContextWhenHidden: true } }),
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
