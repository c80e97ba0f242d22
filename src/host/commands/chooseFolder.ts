// "Which folder?" for Train Model…: the workspace's folders that hold images, counted, the workspace folder first,
// plus Browse…; with one candidate there is no question.
import path from 'node:path';
import * as vscode from 'vscode';
import { describeImageCount, imageFolderCandidates, type ImageFolder } from '../imageFolders';

interface FolderPick extends vscode.QuickPickItem {
  folder?: string;
}

/** Labels for the quick pick: a workspace folder by its name, others by their path inside it. */
export function folderPickItems(candidates: ImageFolder[], workspaceFolders: string[]): FolderPick[] {
  const items: FolderPick[] = candidates.map((candidate) => {
    const root = workspaceFolders.find((folder) => candidate.folder === folder || candidate.folder.startsWith(folder + path.sep));
    const relative = root ? path.relative(root, candidate.folder).split(path.sep).join('/') : candidate.folder;
    return {
      label: candidate.isRoot ? `$(root-folder) ${path.basename(candidate.folder)}` : `$(folder) ${relative}`,
      description: `${describeImageCount(candidate)}${candidate.isRoot ? ' · the workspace folder' : ''}`,
      folder: candidate.folder,
    };
  });
  items.push({ label: '$(folder-opened) Browse…', description: 'a folder anywhere' });
  return items;
}

/** The folder to train on, or undefined when the person backs out. */
export async function chooseTrainingFolder(exclude: string[]): Promise<vscode.Uri | undefined> {
  const workspaceFolders = (vscode.workspace.workspaceFolders ?? []).map((folder) => folder.uri.fsPath);
  const candidates = workspaceFolders.length
    ? await vscode.window.withProgress({ location: vscode.ProgressLocation.Window, title: 'Cluster Lens: looking for images' }, () => imageFolderCandidates(workspaceFolders, { exclude }))
    : [];
  if (candidates.length === 1) return vscode.Uri.file(candidates[0].folder);
  if (candidates.length > 1) {
    const picked = await vscode.window.showQuickPick(folderPickItems(candidates, workspaceFolders), {
      title: 'Cluster Lens: Train Model',
      placeHolder: 'Which images should the model learn from? Labels, if any, come from the chosen folder\'s subfolders.',
      matchOnDescription: true,
      // A panel that takes focus as it loads (the dashboard, an explanation) must not close the question.
      ignoreFocusOut: true,
    });
    if (!picked) return undefined;
    if (picked.folder) return vscode.Uri.file(picked.folder);
  }
  const browsed = await vscode.window.showOpenDialog({
    canSelectFolders: true,
    canSelectFiles: false,
    defaultUri: vscode.workspace.workspaceFolders?.[0]?.uri,
    openLabel: 'Train on this folder',
    title: candidates.length ? 'Train on a folder of images' : 'No images in the workspace: pick a folder of images to train on',
  });
  return browsed?.[0];
}

/** An image to explain when the command comes without one (the walkthrough's button): images of the workspace. */
export async function chooseImage(excludeGlob: string): Promise<vscode.Uri | undefined> {
  const files = await vscode.workspace.findFiles('**/*.{png,jpg,jpeg,webp,bmp,gif,tif,tiff,PNG,JPG,JPEG}', `{**/node_modules/**,${excludeGlob}}`, 5000);
  if (!files.length) {
    void vscode.window.showWarningMessage('Cluster Lens: there are no images in this workspace to explain. Open a folder of images first.');
    return undefined;
  }
  const items = files
    .map((uri) => ({ label: path.basename(uri.fsPath), description: vscode.workspace.asRelativePath(path.dirname(uri.fsPath)), uri }))
    .sort((a, b) => (a.description + a.label).localeCompare(b.description + b.label));
  const picked = await vscode.window.showQuickPick(items, {
    title: 'Cluster Lens: Explain Cluster',
    placeHolder: 'Pick an image to explain (next time: right-click an image in the explorer, "Explain cluster")',
    matchOnDescription: true,
    ignoreFocusOut: true,
  });
  return picked?.uri;
}
