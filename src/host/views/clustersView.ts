// The "Clusters" side panel (a webview view): the run's clusters, and neighbours of the image open in the editor.
// In an untrusted workspace it shows what the run folder stores (clusters, near-duplicates, outliers) and asks the
// engine for nothing that loads a model: finding an image's neighbours can embed it with the run's checkpoint on
// onnxruntime, so the view says why it shows none and offers to trust the workspace.
import path from 'node:path';
import * as vscode from 'vscode';
import type { FromGallery, ToGallery } from '../../protocol/webview';
import type { Session } from '../session';
import { EngineRequestError } from '../engineClient';
import { isImageFile } from '../runs';
import { explainImage, openImage, runWebviewCommand } from './openImage';
import { imageBase, panelHtml, webviewOptions } from './panelAssets';
import { ReadyQueue } from './readyQueue';
import { manageTrustCommand, mayRequest, TrustRequiredError, trustGatedEngine, type EngineRequester } from './trust';

export class ClustersView implements vscode.WebviewViewProvider {
  static readonly viewType = 'clusterLens.clusters';
  private view: vscode.WebviewView | undefined;
  private messages: ReadyQueue<ToGallery> | undefined;
  private imagesDir = '';
  private runDir = '';
  /** The engine, with requests that load a model refused while the workspace is untrusted. */
  private readonly engine: EngineRequester;
  /** Whether this window was already told why the view shows no neighbours in Restricted Mode. */
  private toldRestricted = false;

  constructor(private readonly session: Session) {
    this.engine = trustGatedEngine(session.engine, () => vscode.workspace.isTrusted);
  }

  resolveWebviewView(view: vscode.WebviewView): void {
    this.view = view;
    this.messages = new ReadyQueue((message) => void view.webview.postMessage(message), { replayOnReload: true });
    view.webview.options = webviewOptions(this.session.extensionUri);
    view.webview.html = panelHtml(view.webview, this.session.extensionUri, 'gallery', 'Clusters');
    // Shown again (after another view had the sidebar): the image open now may have changed while it was away.
    view.onDidChangeVisibility(() => view.visible && void this.showNeighboursOfActiveImage());
    view.webview.onDidReceiveMessage((message: FromGallery) => {
      if (message.type === 'webview.ready') {
        this.messages?.markReady();
        // A page that was put away while hidden and loaded again asks afresh for the open image's neighbours, in
        // case their reply reached the old page.
        void this.showNeighboursOfActiveImage();
      }
      else if (message.type === 'webview.openImage') void openImage(this.imagesDir, message.path);
      else if (message.type === 'webview.explainImage') void explainImage(this.imagesDir, message.path);
      else if (message.type === 'webview.command') void runWebviewCommand(message.command);
      else if (message.type === 'gallery.findDuplicates' || message.type === 'gallery.findOutliers') void this.curate(message.type);
    });
    this.showTrustState();
    const granted = vscode.workspace.onDidGrantWorkspaceTrust(() => {
      this.showTrustState();
      void this.showNeighboursOfActiveImage();
    });
    view.onDidDispose(() => granted.dispose());
    void this.refresh();
  }

  /** The view's header says when it runs restricted. */
  private showTrustState(): void {
    if (this.view) this.view.description = vscode.workspace.isTrusted ? undefined : 'Restricted Mode: no neighbours';
  }

  /** Once per window: why the open image's neighbours are not shown, with the way to trust the workspace. */
  private async explainRestricted(): Promise<void> {
    if (this.toldRestricted) return;
    this.toldRestricted = true;
    const manage = 'Manage Workspace Trust';
    const choice = await vscode.window.showWarningMessage(
      "Cluster Lens: the Clusters view shows no neighbours of the open image in Restricted Mode. Finding them can load the run's model, which an untrusted workspace does not allow. Trust the workspace to see them; the clusters, near-duplicates and outliers still work.",
      manage,
    );
    if (choice === manage) await vscode.commands.executeCommand(manageTrustCommand);
  }

  async refresh(): Promise<void> {
    if (!this.view || !this.messages) return;
    const runDir = await this.session.currentRun();
    if (!runDir) {
      this.messages.post({ type: 'gallery.empty', message: 'No run yet. Train a model on a folder of images (it takes a few minutes and runs in the background), or open a run trained earlier.' });
      return;
    }
    try {
      const { overview } = await this.engine.request({ type: 'overview', runDir });
      this.runDir = runDir;
      this.imagesDir = overview.imagesDir;
      this.view.webview.options = webviewOptions(this.session.extensionUri, overview.imagesDir);
      this.messages.reset();
      this.messages.post({ type: 'gallery.data', overview, imageBase: imageBase(this.view.webview, overview.imagesDir) });
      // The reset dropped any neighbours already shown (or posted while this refresh waited): show them again.
      await this.showNeighboursOfActiveImage();
    } catch (error) {
      this.messages.post({ type: 'gallery.empty', message: error instanceof EngineRequestError || error instanceof TrustRequiredError ? error.message : String(error) });
    }
  }

  /** When an image of the run is open in the editor, show its nearest neighbours. */
  async showNeighboursOfActiveImage(): Promise<void> {
    const input = vscode.window.tabGroups.activeTabGroup.activeTab?.input as { uri?: vscode.Uri } | undefined;
    const file = input?.uri?.fsPath;
    if (!file || !this.messages || !this.imagesDir || !isImageFile(file) || path.relative(this.imagesDir, file).startsWith('..')) return;
    if (!mayRequest('neighbours', vscode.workspace.isTrusted)) {
      void this.explainRestricted();
      return;
    }
    try {
      const result = await this.engine.request({ type: 'neighbours', runDir: this.runDir, image: file, k: 12 });
      this.messages.post({ type: 'gallery.neighbours', query: path.relative(this.imagesDir, file).split(path.sep).join('/'), cluster: result.cluster, neighbours: result.neighbours, search: result.search });
    } catch (error) {
      if (error instanceof TrustRequiredError) void this.explainRestricted();
      this.session.output.warn(`Neighbours of ${file}: ${error instanceof Error ? error.message : String(error)}`);
    }
  }

  /** Near-duplicates or outliers of the current run, with progress in the window's status bar. */
  private async curate(kind: 'gallery.findDuplicates' | 'gallery.findOutliers'): Promise<void> {
    if (!this.runDir || !this.messages) return;
    const title = kind === 'gallery.findDuplicates' ? 'Cluster Lens: finding near-duplicates' : 'Cluster Lens: ranking outliers';
    try {
      await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title, cancellable: true }, async (progress, token) => {
        const controller = new AbortController();
        token.onCancellationRequested(() => controller.abort());
        const handlers = { signal: controller.signal, onProgress: (event: { message?: string }) => progress.report({ message: event.message }) };
        if (kind === 'gallery.findDuplicates') {
          const result = await this.engine.request({ type: 'duplicates', runDir: this.runDir }, handlers);
          this.messages?.post({ type: 'gallery.duplicates', result });
        } else {
          const result = await this.engine.request({ type: 'outliers', runDir: this.runDir, limit: 60 }, handlers);
          this.messages?.post({ type: 'gallery.outliers', result });
        }
      });
    } catch (error) {
      this.messages.post({ type: 'gallery.curationFailed', message: error instanceof EngineRequestError || error instanceof TrustRequiredError ? error.message : String(error) });
    }
  }
}
