// Starts code-server (a real VS Code in the browser) with the built extension, and drives it with Playwright.
import { spawn, type ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { chromium, type Browser, type Frame, type Page } from 'playwright-core';
import { chromiumPath } from '../webview/harness';

const root = path.resolve(__dirname, '../..');
/** Where .ci/run installs code-server 4.100.3 (see README); override with CODE_SERVER. */
export const codeServerPath = process.env.CODE_SERVER ?? path.join(root, '.e2e', 'code-server', 'node_modules', '.bin', 'code-server');
export const skipWithoutCodeServer = !existsSync(codeServerPath) && !process.env.CI ? `no code-server at ${codeServerPath} (run scripts/install-code-server.sh)` : false;

export interface VsCode {
  page: Page;
  workspace: string;
  /** Right-clicks an explorer row and picks a context-menu item, retrying while menus are still loading. */
  contextMenu(row: string, item: string): Promise<void>;
  /** Runs a command from the palette by its full title. */
  command(title: string): Promise<void>;
  /** The webview frame that shows an element with this accessible name (webviews nest two iframes deep). */
  webviewWith(name: string, timeoutMs?: number): Promise<Frame>;
  close(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

export async function startVsCode(options: { files: (workspace: string) => void; settings: Record<string, unknown> }): Promise<VsCode> {
  const base = mkdtempSync(path.join(os.tmpdir(), 'cl-e2e-'));
  const workspace = path.join(base, 'workspace');
  const userData = path.join(base, 'user-data');
  const extensions = path.join(base, 'extensions');
  mkdirSync(workspace);
  mkdirSync(path.join(userData, 'User'), { recursive: true });
  mkdirSync(extensions);
  options.files(workspace);
  writeFileSync(
    path.join(userData, 'User', 'settings.json'),
    JSON.stringify({ 'security.workspace.trust.enabled': false, 'workbench.startupEditor': 'none', 'workbench.tips.enabled': false, 'telemetry.telemetryLevel': 'off', ...options.settings }),
  );
  // The unpacked extension, as VS Code installs it: <publisher>.<name>-<version>.
  const manifest = JSON.parse(require('node:fs').readFileSync(path.join(root, 'package.json'), 'utf8')) as { publisher: string; name: string; version: string };
  symlinkSync(root, path.join(extensions, `${manifest.publisher}.${manifest.name}-${manifest.version}`));
  const port = await freePort();
  const server: ChildProcess = spawn(
    codeServerPath,
    ['--auth', 'none', '--bind-addr', `127.0.0.1:${port}`, '--disable-telemetry', '--disable-update-check', '--disable-workspace-trust', '--user-data-dir', userData, '--extensions-dir', extensions, workspace],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PASSWORD: undefined } },
  );
  let serverLog = '';
  server.stdout?.on('data', (chunk) => (serverLog += chunk));
  server.stderr?.on('data', (chunk) => (serverLog += chunk));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`code-server did not start:\n${serverLog}`)), 60_000);
    const check = setInterval(() => {
      if (serverLog.includes('HTTP server listening')) {
        clearInterval(check);
        clearTimeout(timer);
        resolve();
      }
    }, 100);
  });
  let browser: Browser | undefined;
  try {
    browser = await chromium.launch({
    executablePath: chromiumPath,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    await page.goto(`http://127.0.0.1:${port}/?folder=${encodeURIComponent(workspace)}`);
    await page.locator('.monaco-workbench').waitFor({ timeout: 60_000 });
    await page.locator('.explorer-folders-view .monaco-list-row').first().waitFor({ timeout: 60_000 });
    // The activity bar icon appears once the extension's contributions are registered.
    await page.locator('.activitybar a[aria-label^="Cluster Lens"]').waitFor({ timeout: 60_000 });
    return session(page, browser);
  } catch (error) {
    await browser?.close();
    server.kill();
    throw error;
  }

  function session(page: Page, browser: Browser): VsCode {
  return {
    page,
    workspace,
    async contextMenu(row, item) {
      for (let attempt = 0; attempt < 5; attempt++) {
        await page.locator('.explorer-folders-view .monaco-list-row', { hasText: row }).first().click({ button: 'right' });
        const entry = page.locator('.context-view .action-label', { hasText: item });
        if (await entry.waitFor({ timeout: 3000 }).then(() => true, () => false)) {
          await entry.click();
          return;
        }
        await page.keyboard.press('Escape');
      }
      throw new Error(`the context menu of "${row}" has no "${item}"`);
    },
    async command(title) {
      await page.keyboard.press('F1');
      const input = page.locator('.quick-input-widget input');
      await input.waitFor();
      await input.fill(`>${title}`);
      await page.locator('.quick-input-list .monaco-list-row', { hasText: title }).first().waitFor();
      await page.keyboard.press('Enter');
    },
    async webviewWith(name, timeoutMs = 60_000) {
      const deadline = Date.now() + timeoutMs;
      while (Date.now() < deadline) {
        for (const frame of page.frames().filter((f) => f !== page.mainFrame())) {
          if (await frame.locator(`[aria-label="${name}"], img[alt="${name}"]`).count().catch(() => 0)) return frame;
        }
        await page.waitForTimeout(250);
      }
      throw new Error(`no webview shows "${name}"`);
    },
    async close() {
      // For debugging a failure: the last screen and the workspace (runs included) land in CL_E2E_LOG.
      if (process.env.CL_E2E_LOG) {
        await page.screenshot({ path: path.join(process.env.CL_E2E_LOG, 'last.png') }).catch(() => undefined);
        cpSync(workspace, path.join(process.env.CL_E2E_LOG, 'workspace'), { recursive: true });
      }
      await browser.close();
      server.kill();
    },
  };
  }
}
