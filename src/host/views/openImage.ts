// What a click in a panel does, in every panel: open an image, explain it, or run one of the allowed commands.
// The path comes from the page: only an image inside the run's images folder is opened or explained.
import * as vscode from 'vscode';
import { webviewCommands, type WebviewCommand } from '../../protocol/webview';
import { imageInsideFolder } from './webviewPaths';

export async function openImage(imagesDir: string, relativePath: string): Promise<void> {
  const image = await imageInsideFolder(imagesDir, relativePath);
  if (!image) return;
  await vscode.commands.executeCommand('vscode.open', vscode.Uri.file(image), { preview: true, viewColumn: vscode.ViewColumn.One });
}

export async function explainImage(imagesDir: string, relativePath: string): Promise<void> {
  const image = await imageInsideFolder(imagesDir, relativePath);
  if (!image) return;
  await vscode.commands.executeCommand('clusterLens.explainCluster', vscode.Uri.file(image));
}

/** A panel's button: only the commands on the allow list run, whatever a (compromised) page asks for. */
export async function runWebviewCommand(command: unknown): Promise<void> {
  if (!webviewCommands.includes(command as WebviewCommand)) return;
  await vscode.commands.executeCommand(command as WebviewCommand);
}
