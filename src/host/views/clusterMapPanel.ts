// The cluster map panel: the run's PCA scatter, revived after a reload.
import path from 'node:path';
import * as vscode from 'vscode';
import type { FromClusterMap, ToClusterMap } from '../../protocol';
import type { Session } from '../session';
import { EngineRequestError } from '../engineClient';
import { explainImage, openImage, runWebviewCommand } from './openImage';
import { imageBase, panelHtml, webviewOptions } from './panelAssets';
import { ReadyQueue } from './readyQueue';

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

  private constructor(
    private readonly session: Session,
    private readonly panel: vscode.WebviewPanel,
  ) {
    this.messages = new ReadyQueue((message) => void panel.webview.postMessage(message));
    panel.webview.onDidReceiveMessage((message: FromClusterMap) => {
      if (message.type === 'webview.ready') this.messages.markReady();
      else if (message.type === 'webview.openImage') void openImage(this.imagesDir, message.path);
      else if (message.type === 'webview.explainImage') void explainImage(this.imagesDir, message.path);
      else if (message.type === 'webview.command') void runWebviewCommand(message.command);
    });
    panel.onDidDispose(() => {
      if (ClusterMapPanel.current === this) ClusterMapPanel.current = undefined;
    });
  }

  private async load(runDir: string): Promise<void> {
    try {
      const { overview } = await this.session.engine.request({ type: 'overview', runDir });
      this.imagesDir = overview.imagesDir;
      this.panel.webview.options = webviewOptions(this.session.extensionUri, overview.imagesDir);
      this.panel.webview.html = panelHtml(this.panel.webview, this.session.extensionUri, 'cluster-map', 'Cluster map');
      this.messages.post({ type: 'map.data', overview, imageBase: imageBase(this.panel.webview, overview.imagesDir) });
    } catch (error) {
      const message = error instanceof EngineRequestError ? error.message : String(error);
      void vscode.window.showErrorMessage(`Cluster Lens: cannot show the cluster map. ${message}`);
      this.panel.dispose();
    }
  }
}
