// The HTML shell of every panel: a strict CSP with a nonce, the panel's bundle and stylesheet, nothing inline.
import { randomBytes } from 'node:crypto';

/** The parts of vscode.Webview the shell needs, so tests can render it without VS Code. */
export interface WebviewLike {
  cspSource: string;
  asWebviewUri(uri: { fsPath: string }): { toString(): string };
}

export interface PanelShell {
  /** The bundle name under dist/webview/ (e.g. "dashboard"). */
  bundle: string;
  title: string;
  /** URIs of dist/webview/<bundle>.js and .css as the webview sees them. */
  scriptUri: string;
  styleUri?: string;
}

export function createNonce(): string {
  return randomBytes(18).toString('base64').replace(/[^A-Za-z0-9]/g, '');
}

/** Escapes text for HTML; every file name and label shown in a panel goes through this or textContent. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

export function renderPanelHtml(cspSource: string, shell: PanelShell, nonce = createNonce()): string {
  const csp = [
    "default-src 'none'",
    `img-src ${cspSource} data: blob:`,
    `style-src ${cspSource} 'nonce-${nonce}'`,
    `font-src ${cspSource}`,
    // The cluster map fetches its points file (binary) from the run folder.
    `connect-src ${cspSource}`,
    `script-src 'nonce-${nonce}'`,
  ].join('; ');
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="${csp}">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
${shell.styleUri ? `<link rel="stylesheet" href="${escapeHtml(shell.styleUri)}" nonce="${nonce}">` : ''}
<title>${escapeHtml(shell.title)}</title>
</head>
<body>
<main id="root" data-panel="${escapeHtml(shell.bundle)}"></main>
<script nonce="${nonce}" src="${escapeHtml(shell.scriptUri)}"></script>
</body>
</html>`;
}
