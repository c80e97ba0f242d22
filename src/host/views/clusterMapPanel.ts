// The cluster map panel: the run's WebGL scatter (PCA or UMAP), revived after a reload. The points travel as one
// binary file in the run folder (map-points.bin) that the webview fetches; only small messages go through postMessage.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import * as vscode from 'vscode';
import type { MapLayout } from '../../protocol/mapPoints';
import type { FromClusterMap, ToClusterMap } from '../../protocol/webview';
import type { Session } from '../session';
import { EngineRequestError } from '../engineClient';
import { explainImage, openImage, runWebviewCommand } from './openImage';
import { imageBase, panelHtml, webviewOptions } from './panelAssets';
import { ReadyQueue } from './readyQueue';
import { trustGatedEngine, type EngineRequester } from './trust';
import { pathInsideFolder } from './webviewPaths';

export class ClusterMapPanel {
  static readonly viewType = 'clusterLens.clusterMap';
  private static current: ClusterMapPanel | undefined;

  static async show(session: Session, runDir: string): Promise<void> {
    ClusterMapPanel.current?.panel.dispose();
    const panel = vscode.window.createWebviewPanel(ClusterMapPanel.viewType, `Cluster Map: ${path.basename(runDir)}`, vscode.ViewColumn.Active, { enableScripts: true });
    ClusterMapPanel.current = new ClusterMapPanel(session, panel);
    await ClusterMapPanel.current.load(runDir);
  }

  static async revive(session: Session, panel: vscode.WebviewPanel): Promise<void> {
    const runDir = await session.currentRun();
    ClusterMapPanel.current = new ClusterMapPanel(session, panel);
    if (runDir) await ClusterMapPanel.current.load(runDir);
  }

  private readonly messages: ReadyQueue<ToClusterMap>;
  private imagesDir = '';
  private runDir = '';
  /** The engine, with requests that load a model refused while the workspace is untrusted (the map needs none). */
  private readonly engine: EngineRequester;

  private constructor(
    private readonly session: Session,
    private readonly panel: vscode.WebviewPanel,
  ) {
    this.engine = trustGatedEngine(session.engine, () => vscode.workspace.isTrusted);
    this.messages = new ReadyQueue((message) => void panel.webview.postMessage(message));
    panel.webview.onDidReceiveMessage((message: FromClusterMap) => {
      if (message.type === 'webview.ready') this.messages.markReady();
      else if (message.type === 'webview.openImage') void openImage(this.imagesDir, message.path);
      else if (message.type === 'webview.explainImage') void explainImage(this.imagesDir, message.path);
      else if (message.type === 'webview.command') void runWebviewCommand(message.command);
      else if (message.type === 'map.computeLayout') void this.computeLayout();
      else if (message.type === 'map.copyPaths') void this.copyPaths(message.paths);
      else if (message.type === 'map.savePaths') void this.savePaths(message.paths);
    });
    panel.onDidDispose(() => {
      if (ClusterMapPanel.current === this) ClusterMapPanel.current = undefined;
    });
  }

  private async load(runDir: string, layout?: MapLayout): Promise<void> {
    try {
      const points = await this.engine.request({ type: 'mapPoints', runDir });
      this.imagesDir = points.imagesDir;
      this.runDir = points.runDir;
      const firstLoad = !this.panel.webview.html;
      // Resources: the bundles, the images folder, and the one points file (its folder, as roots are folders).
      this.panel.webview.options = webviewOptions(this.session.extensionUri, points.imagesDir, [path.dirname(points.path)]);
      if (firstLoad || layout === undefined) {
        this.messages.reset();
        this.panel.webview.html = panelHtml(this.panel.webview, this.session.extensionUri, 'cluster-map', 'Cluster map');
      }
      const pointsUrl = `${this.panel.webview.asWebviewUri(vscode.Uri.file(points.path)).toString()}?v=${Date.now()}`;
      this.messages.post({ type: 'map.points', pointsUrl, imageBase: imageBase(this.panel.webview, points.imagesDir), runName: path.basename(points.runDir), clusters: points.clusters, layout });
    } catch (error) {
      const message = error instanceof EngineRequestError ? error.message : String(error);
      void vscode.window.showErrorMessage(`Cluster Lens: cannot show the cluster map. ${message}`);
      this.panel.dispose();
    }
  }

  /** UMAP on demand: progress in the panel and a cancellable notification, then the map reloads in that layout. */
  private async computeLayout(): Promise<void> {
    try {
      await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: 'Cluster Lens: UMAP layout', cancellable: true }, (progress, token) => {
        const controller = new AbortController();
        token.onCancellationRequested(() => controller.abort());
        let reported = 0;
        return this.engine.request(
          { type: 'layout', runDir: this.runDir, layout: 'umap' },
          {
            signal: controller.signal,
            onProgress: (event) => {
              progress.report({ message: event.message, increment: Math.max(0, 100 * event.fraction - reported) });
              reported = Math.max(reported, 100 * event.fraction);
              void this.panel.webview.postMessage({ type: 'map.layoutProgress', message: event.message ?? 'UMAP', fraction: event.fraction } satisfies ToClusterMap);
            },
          },
        );
      });
      await this.load(this.runDir, 'umap');
    } catch (error) {
      const message = error instanceof EngineRequestError ? error.message : String(error);
      void this.panel.webview.postMessage({ type: 'map.layoutFailed', message: `UMAP did not finish: ${message}` } satisfies ToClusterMap);
    }
  }

  /** The lasso's paths (the page's word) as absolute paths, only those inside the images folder. */
  private absolutePaths(paths: unknown): string[] {
    if (!Array.isArray(paths) || !this.imagesDir) return [];
    return paths.flatMap((relative) => pathInsideFolder(this.imagesDir, relative) ?? []);
  }

  private async copyPaths(paths: string[]): Promise<void> {
    const absolute = this.absolutePaths(paths);
    await vscode.env.clipboard.writeText(absolute.join('\n'));
    void vscode.window.showInformationMessage(`Cluster Lens: copied ${absolute.length} paths.`);
  }

  private async savePaths(paths: string[]): Promise<void> {
    const target = await vscode.window.showSaveDialog({ title: 'Save the selection as a file list', defaultUri: vscode.Uri.file(path.join(this.runDir, 'selection.txt')), filters: { 'File list': ['txt'] } });
    if (!target) return;
    const absolute = this.absolutePaths(paths);
    await fs.writeFile(target.fsPath, `${absolute.join('\n')}\n`);
    void vscode.window.showInformationMessage(`Cluster Lens: saved ${absolute.length} paths to ${target.fsPath}.`);
  }
}
