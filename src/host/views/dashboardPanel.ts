// The training dashboard panel: one per window, revived after a reload by its serializer.
import * as vscode from 'vscode';
import type { FromWebview, ToDashboard } from '../../protocol';
import { renderPanelHtml } from './webviewHtml';

export class DashboardPanel {
  static readonly viewType = 'clusterLens.dashboard';
  private static current: DashboardPanel | undefined;
  private ready = false;
  private readonly queue: ToDashboard[] = [];

  static show(extensionUri: vscode.Uri): DashboardPanel {
    if (DashboardPanel.current) {
      DashboardPanel.current.panel.reveal(undefined, true);
      return DashboardPanel.current;
    }
    const panel = vscode.window.createWebviewPanel(DashboardPanel.viewType, 'Cluster Lens: Training', { viewColumn: vscode.ViewColumn.Beside, preserveFocus: true }, DashboardPanel.options(extensionUri));
    return (DashboardPanel.current = new DashboardPanel(panel, extensionUri));
  }

  static revive(panel: vscode.WebviewPanel, extensionUri: vscode.Uri): void {
    panel.webview.options = DashboardPanel.options(extensionUri);
    DashboardPanel.current = new DashboardPanel(panel, extensionUri);
  }

  /** Scripts on; resources only from the bundled webview folder. */
  private static options(extensionUri: vscode.Uri): vscode.WebviewOptions & vscode.WebviewPanelOptions {
    return { enableScripts: true, localResourceRoots: [vscode.Uri.joinPath(extensionUri, 'dist', 'webview')], retainContextWhenHidden: false };
  }

  private constructor(
    private readonly panel: vscode.WebviewPanel,
    extensionUri: vscode.Uri,
  ) {
    const asset = (file: string) => panel.webview.asWebviewUri(vscode.Uri.joinPath(extensionUri, 'dist', 'webview', file)).toString();
    panel.webview.html = renderPanelHtml(panel.webview.cspSource, { bundle: 'dashboard', title: 'Training', scriptUri: asset('dashboard.js'), styleUri: asset('dashboard.css') });
    panel.webview.onDidReceiveMessage((message: FromWebview) => {
      if (message.type === 'webview.ready') {
        this.ready = true;
        for (const queued of this.queue.splice(0)) void panel.webview.postMessage(queued);
      }
    });
    panel.onDidDispose(() => {
      if (DashboardPanel.current === this) DashboardPanel.current = undefined;
    });
  }

  post(message: ToDashboard): void {
    if (this.ready) void this.panel.webview.postMessage(message);
    else this.queue.push(message);
  }

  static post(message: ToDashboard): void {
    DashboardPanel.current?.post(message);
  }
}
