// The explain panel: Grad-CAM of the assigned prototype, then a counterfactual toward the nearest other cluster
// (or the one the user picks), both computed by the engine and shown side by side.
import path from 'node:path';
import * as vscode from 'vscode';
import type { FromExplainPanel, ToExplainPanel } from '../../protocol';
import type { Session } from '../extension';
import { EngineRequestError } from '../engineClient';
import { explainImage, openImage } from './openImage';
import { imageBase, panelHtml, ReadyQueue, webviewOptions } from './panelAssets';

export class ExplainPanel {
  static readonly viewType = 'clusterLens.explain';
  private static current: ExplainPanel | undefined;

  static async show(session: Session, runDir: string, image: string): Promise<void> {
    if (!ExplainPanel.current) {
      const panel = vscode.window.createWebviewPanel(ExplainPanel.viewType, 'Explain cluster', vscode.ViewColumn.Beside, webviewOptions(session.extensionUri));
      ExplainPanel.current = new ExplainPanel(session, panel);
    }
    ExplainPanel.current.panel.reveal(undefined, true);
    await ExplainPanel.current.explain(runDir, image);
  }

  private readonly messages: ReadyQueue<ToExplainPanel>;
  private runDir = '';
  private image = '';
  private imagesDir = '';

  private constructor(
    private readonly session: Session,
    private readonly panel: vscode.WebviewPanel,
  ) {
    this.messages = new ReadyQueue((message) => void panel.webview.postMessage(message));
    panel.webview.html = panelHtml(panel.webview, session.extensionUri, 'explain', 'Explain cluster');
    panel.webview.onDidReceiveMessage((message: FromExplainPanel) => {
      if (message.type === 'webview.ready') this.messages.markReady();
      else if (message.type === 'webview.openImage') void openImage(this.imagesDir, message.path);
      else if (message.type === 'webview.explainImage') void explainImage(this.imagesDir, message.path);
      else if (message.type === 'explain.counterfactualTarget') void this.counterfactual(message.cluster);
    });
    panel.onDidDispose(() => {
      if (ExplainPanel.current === this) ExplainPanel.current = undefined;
    });
  }

  private async explain(runDir: string, image: string): Promise<void> {
    this.runDir = runDir;
    this.image = image;
    this.panel.title = `Explain: ${path.basename(image)}`;
    this.messages.post({ type: 'explain.loading', image, imageName: path.basename(image) });
    try {
      const result = await this.session.engine.request({ type: 'explain', runDir, image, method: 'gradcam', inlinePngs: true });
      const { overview } = await this.session.engine.request({ type: 'overview', runDir });
      this.imagesDir = overview.imagesDir;
      this.panel.webview.options = webviewOptions(this.session.extensionUri, overview.imagesDir);
      this.messages.post({ type: 'explain.gradcam', result, prototypes: overview.prototypes, imageBase: imageBase(this.panel.webview, overview.imagesDir) });
    } catch (error) {
      this.messages.post({ type: 'explain.error', stage: 'gradcam', message: describe(error) });
      return;
    }
    await this.counterfactual();
  }

  private async counterfactual(cluster?: number): Promise<void> {
    try {
      const result = await this.session.engine.request({
        type: 'explain',
        runDir: this.runDir,
        image: this.image,
        method: 'counterfactual',
        target: cluster === undefined ? undefined : { kind: 'prototype', prototype: cluster },
        inlinePngs: true,
      });
      this.messages.post({ type: 'explain.counterfactual', result });
    } catch (error) {
      this.messages.post({ type: 'explain.error', stage: 'counterfactual', message: describe(error) });
    }
  }
}

function describe(error: unknown): string {
  return error instanceof EngineRequestError ? error.message : String(error);
}
