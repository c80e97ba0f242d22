// The training dashboard panel: one per window, revived after a reload by its serializer.
import * as vscode from 'vscode';
import type { FromWebview, ToDashboard } from '../../protocol/webview';
import { runWebviewCommand } from './openImage';
import { panelHtml, webviewOptions } from './panelAssets';
import { ReadyQueue } from './readyQueue';

export class DashboardPanel {
  static readonly viewType = 'clusterLens.dashboard';
  private static current: DashboardPanel | undefined;
  private readonly messages: ReadyQueue<ToDashboard>;

  static show(extensionUri: vscode.Uri): DashboardPanel {
    if (DashboardPanel.current) {
      DashboardPanel.current.panel.reveal(undefined, true);
      return DashboardPanel.current;
    }
    const panel = vscode.window.createWebviewPanel(DashboardPanel.viewType, 'Cluster Lens: Dashboard', { viewColumn: vscode.ViewColumn.Beside, preserveFocus: true }, webviewOptions(extensionUri));
    return (DashboardPanel.current = new DashboardPanel(panel, extensionUri));
  }

  static revive(panel: vscode.WebviewPanel, extensionUri: vscode.Uri): void {
    panel.webview.options = webviewOptions(extensionUri);
    DashboardPanel.current = new DashboardPanel(panel, extensionUri);
  }

  static isOpen(): boolean {
    return DashboardPanel.current !== undefined;
  }

  static post(message: ToDashboard): void {
    DashboardPanel.current?.post(message);
  }

  private constructor(
    private readonly panel: vscode.WebviewPanel,
    extensionUri: vscode.Uri,
  ) {
    this.messages = new ReadyQueue((message) => void panel.webview.postMessage(message));
    panel.webview.html = panelHtml(panel.webview, extensionUri, 'dashboard', 'Training');
    panel.webview.onDidReceiveMessage((message: FromWebview) => {
      if (message.type === 'webview.ready') this.messages.markReady();
      else if (message.type === 'webview.command') void runWebviewCommand(message.command);
    });
    panel.onDidDispose(() => {
      if (DashboardPanel.current === this) DashboardPanel.current = undefined;
    });
  }

  post(message: ToDashboard): void {
    this.messages.post(message);
  }
}
