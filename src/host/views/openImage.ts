// What a click in a panel does, in every panel: open an image, explain it, or run one of the allowed commands.
import path from 'node:path';
import * as vscode from 'vscode';
import { webviewCommands, type WebviewCommand } from '../../protocol/webview';

export async function openImage(imagesDir: string, relativePath: string): Promise<void> {
  await vscode.commands.executeCommand('vscode.open', vscode.Uri.file(path.join(imagesDir, relativePath)), { preview: true, viewColumn: vscode.ViewColumn.One });
}

export async function explainImage(imagesDir: string, relativePath: string): Promise<void> {
  await vscode.commands.executeCommand('clusterLens.explainCluster', vscode.Uri.file(path.join(imagesDir, relativePath)));
}

/** A panel's button: only the commands on the allow list run, whatever a (compromised) page asks for. */
export async function runWebviewCommand(command: unknown): Promise<void> {
  if (!webviewCommands.includes(command as WebviewCommand)) return;
  await vscode.commands.executeCommand(command as WebviewCommand);
}
