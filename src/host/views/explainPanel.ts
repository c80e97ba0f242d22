// The explain panel: Grad-CAM of the assigned prototype, then a counterfactual toward the nearest other cluster
// (or the one the user picks), both computed by the engine and shown side by side.
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import * as vscode from 'vscode';
import type { CounterfactualMethod, ExplainPanelState, FromExplainPanel, ToExplainPanel } from '../../protocol/webview';
import type { Session } from '../session';
import { EngineRequestError } from '../engineClient';
import { isInRun } from '../runs';
import { explainImage, openImage, runWebviewCommand } from './openImage';
import { imageBase, panelHtml, webviewOptions } from './panelAssets';
import { ReadyQueue } from './readyQueue';
import { TrustRequiredError, trustGatedEngine, type EngineRequester } from './trust';
import { imageInsideAny } from './webviewPaths';

export class ExplainPanel {
  static readonly viewType = 'clusterLens.explain';
  private static current: ExplainPanel | undefined;

  static async show(session: Session, runDir: string, image: string): Promise<void> {
    // The images folder is a resource root from the start: changing a webview's options later reloads its page.
    const imagesDir = await runImagesDir(runDir);
    if (!ExplainPanel.current) {
      const panel = vscode.window.createWebviewPanel(ExplainPanel.viewType, 'Explain cluster', vscode.ViewColumn.Beside, webviewOptions(session.extensionUri, imagesDir));
      ExplainPanel.current = new ExplainPanel(session, panel, imagesDir);
    } else if (imagesDir !== ExplainPanel.current.imagesDir) {
      ExplainPanel.current.panel.webview.options = webviewOptions(session.extensionUri, imagesDir);
      ExplainPanel.current.imagesDir = imagesDir;
    }
    ExplainPanel.current.panel.reveal(undefined, true);
    await ExplainPanel.current.explain(runDir, image);
  }

  /** After a window reload: explain the image the panel showed, if its run and file are still there. */
  static async revive(session: Session, panel: vscode.WebviewPanel, state: ExplainPanelState | undefined): Promise<void> {
    // The state was written by the page: the image must be one the user could have explained, an image file in the
    // run's images folder or in a workspace folder.
    const runDir = typeof state?.runDir === 'string' ? state.runDir : undefined;
    if (!vscode.workspace.isTrusted || !runDir || !existsSync(path.join(runDir, 'run.json'))) {
      panel.dispose();
      return;
    }
    const imagesDir = await runImagesDir(runDir);
    const folders = [...(imagesDir ? [imagesDir] : []), ...(vscode.workspace.workspaceFolders ?? []).map((folder) => folder.uri.fsPath)];
    const image = await imageInsideAny(folders, state?.image);
    if (!image) {
      panel.dispose();
      return;
    }
    panel.webview.options = webviewOptions(session.extensionUri, imagesDir);
    ExplainPanel.current?.panel.dispose();
    ExplainPanel.current = new ExplainPanel(session, panel, imagesDir);
    await ExplainPanel.current.explain(runDir, image);
  }

  private readonly messages: ReadyQueue<ToExplainPanel>;
  private runDir = '';
  private image = '';
  /** The counterfactual method last picked in the panel; the next image keeps it. */
  private method: CounterfactualMethod = 'counterfactual';
  /** Cancels the counterfactual search under way. */
  private searching: AbortController | undefined;
  /** The engine, with requests that load a model refused while the workspace is untrusted. */
  private readonly engine: EngineRequester;

  private constructor(
    private readonly session: Session,
    private readonly panel: vscode.WebviewPanel,
    private imagesDir: string | undefined,
  ) {
    this.engine = trustGatedEngine(session.engine, () => vscode.workspace.isTrusted);
    this.messages = new ReadyQueue((message) => void panel.webview.postMessage(message), { replayOnReload: true });
    panel.webview.html = panelHtml(panel.webview, session.extensionUri, 'explain', 'Explain cluster');
    panel.webview.onDidReceiveMessage((message: FromExplainPanel) => {
      if (message.type === 'webview.ready') this.messages.markReady();
      else if (message.type === 'webview.openImage') void (this.imagesDir && openImage(this.imagesDir, message.path));
      else if (message.type === 'webview.explainImage') void (this.imagesDir && explainImage(this.imagesDir, message.path));
      else if (message.type === 'webview.command') void runWebviewCommand(message.command);
      else if (message.type === 'explain.counterfactualTarget') void this.counterfactual(message.cluster, message.method);
      else if (message.type === 'explain.cancel') this.searching?.abort();
    });
    panel.onDidDispose(() => {
      this.searching?.abort();
      if (ExplainPanel.current === this) ExplainPanel.current = undefined;
    });
  }

  private async explain(runDir: string, image: string): Promise<void> {
    this.runDir = runDir;
    this.image = image;
    this.panel.title = `Explain: ${path.basename(image)}`;
    this.messages.reset();
    this.messages.post({ type: 'explain.loading', runDir, image, imageName: path.basename(image) });
    try {
      const result = await this.engine.request({ type: 'explain', runDir, image, method: 'gradcam', inlinePngs: true });
      const { overview } = await this.engine.request({ type: 'overview', runDir });
      if (overview.imagesDir !== this.imagesDir) {
        this.imagesDir = overview.imagesDir;
        this.panel.webview.options = webviewOptions(this.session.extensionUri, overview.imagesDir);
      }
      this.messages.post({
        type: 'explain.gradcam',
        result,
        prototypes: overview.prototypes,
        imageBase: imageBase(this.panel.webview, overview.imagesDir),
        inRun: isInRun(overview, image),
        clusterSizes: Array.from({ length: overview.prototypes }, (_, cluster) => overview.clusters.find((summary) => summary.cluster === cluster)?.size ?? 0),
        runName: path.basename(runDir),
      });
    } catch (error) {
      this.messages.post({ type: 'explain.error', stage: 'gradcam', message: describe(error) });
      return;
    }
    await this.counterfactual();
  }

  private async counterfactual(cluster?: number, method?: CounterfactualMethod): Promise<void> {
    if (method) this.method = method;
    // A new search replaces the one under way.
    this.searching?.abort();
    const searching = new AbortController();
    this.searching = searching;
    try {
      const result = await this.engine.request(
        {
          type: 'explain',
          runDir: this.runDir,
          image: this.image,
          method: this.method,
          target: cluster === undefined ? undefined : { kind: 'prototype', prototype: cluster },
          inlinePngs: true,
        },
        {
          signal: searching.signal,
          onProgress: (event) => this.messages.post({ type: 'explain.progress', fraction: event.fraction, message: event.message ?? '' }),
        },
      );
      this.messages.post({ type: 'explain.counterfactual', result });
    } catch (error) {
      if (searching.signal.aborted) {
        if (this.searching === searching) this.messages.post({ type: 'explain.cancelled' });
      } else {
        this.messages.post({ type: 'explain.error', stage: 'counterfactual', message: describe(error) });
      }
    } finally {
      if (this.searching === searching) this.searching = undefined;
    }
  }
}

function describe(error: unknown): string {
  return error instanceof EngineRequestError || error instanceof TrustRequiredError ? error.message : String(error);
}

/** The run's images folder from its run.json, or undefined where that cannot be read (the engine then says why). */
async function runImagesDir(runDir: string): Promise<string | undefined> {
  try {
    const manifest = JSON.parse(await readFile(path.join(runDir, 'run.json'), 'utf8')) as { imagesDir?: unknown };
    return typeof manifest.imagesDir === 'string' ? manifest.imagesDir : undefined;
  } catch {
    return undefined;
  }
}
