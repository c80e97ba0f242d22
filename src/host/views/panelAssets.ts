// What every panel shares: its HTML shell and narrow resource roots.
import * as vscode from 'vscode';
import { renderPanelHtml } from './webviewHtml';

/** Scripts on; resources only from the bundled webviews and, where thumbnails are shown, the run's images folder. */
export function webviewOptions(extensionUri: vscode.Uri, imagesDir?: string, extraRoots: string[] = []): vscode.WebviewOptions {
  const roots = [vscode.Uri.joinPath(extensionUri, 'dist', 'webview')];
  if (imagesDir) roots.push(vscode.Uri.file(imagesDir));
  for (const folder of extraRoots) roots.push(vscode.Uri.file(folder));
  return { enableScripts: true, localResourceRoots: roots };
}

export function panelHtml(webview: vscode.Webview, extensionUri: vscode.Uri, bundle: string, title: string): string {
  const asset = (file: string) => webview.asWebviewUri(vscode.Uri.joinPath(extensionUri, 'dist', 'webview', file)).toString();
  return renderPanelHtml(webview.cspSource, { bundle, title, scriptUri: asset(`${bundle}.js`), styleUri: asset(`${bundle}.css`) });
}

/** The webview URI of the images folder, without a trailing slash; thumbnails append encoded relative paths. */
export function imageBase(webview: vscode.Webview, imagesDir: string): string {
  return webview.asWebviewUri(vscode.Uri.file(imagesDir)).toString().replace(/\/$/, '');
}
