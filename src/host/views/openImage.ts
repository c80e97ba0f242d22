// What a click on a thumbnail does in every panel: open the image, or explain it.
import path from 'node:path';
import * as vscode from 'vscode';

export async function openImage(imagesDir: string, relativePath: string): Promise<void> {
  await vscode.commands.executeCommand('vscode.open', vscode.Uri.file(path.join(imagesDir, relativePath)), { preview: true, viewColumn: vscode.ViewColumn.One });
}

export async function explainImage(imagesDir: string, relativePath: string): Promise<void> {
  await vscode.commands.executeCommand('clusterLens.explainCluster', vscode.Uri.file(path.join(imagesDir, relativePath)));
}
