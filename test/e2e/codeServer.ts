// Starts code-server (a real VS Code in the browser) with the built extension, and drives it with Playwright.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { TestContext } from 'node:test';
import { chromium, type Browser, type Frame, type Page } from 'playwright-core';
import { chromiumPath, codeServerPath, requirements, skipUnless } from '../requirements';

const root = path.resolve(__dirname, '../..');
export { codeServerPath };
/** Outside CI a machine without code-server or Chromium skips the e2e tests; in CI it fails them at once. */
export const skipWithoutVsCode = skipUnless(requirements.chromium, requirements.codeServer);

export interface VsCode {
  page: Page;
  workspace: string;
  /** Right-clicks an explorer row and picks a context-menu item, retrying while menus are still loading. */
  contextMenu(row: string, item: string): Promise<void>;
  /** Expands a folder in the explorer (clicking an expanded one would collapse it). */
  expand(folder: string): Promise<void>;
  /** Runs a command from the palette by its full title. */
  command(title: string): Promise<void>;
  /** Opens the palette (F1) and types `text` key by key, as a person does; resolves with the rows it lists, in order. */
  typeInPalette(text: string): Promise<string[]>;
  /** The rows of the open quick pick, in order, once it lists at least one. */
  quickPickRows(): Promise<string[]>;
  /** Clicks a button of the notification whose message matches `message`. */
  notificationButton(message: RegExp, button: string, timeoutMs?: number): Promise<void>;
  /** The webview frame that shows an element with this accessible name (webviews nest two iframes deep). */
  webviewWith(name: string, timeoutMs?: number): Promise<Frame>;
  /** What is on screen, for failure messages: tabs, notifications, webview frames. */
  describeScreen(): Promise<string>;
  close(): Promise<void>;
}

/**
 * A browser driving a whole IDE has rare timing hiccups, so a walk gets one fresh retry. The first failure is not
 * hidden: it is reported in full as a failed `todo` subtest, which the runner prints and counts in its closing
 * summary ("todo 1"), so intermittent failures stay visible run after run.
 */
export async function withOneRetry(t: TestContext, walk: () => Promise<void>): Promise<void> {
  try {
    await walk();
  } catch (error) {
    await t.test('first attempt failed, retried once with a fresh code-server', { todo: 'an intermittent e2e failure, counted' }, () => {
      throw error;
    });
    await walk();
  }
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

export interface VsCodeOptions {
  files: (workspace: string) => void;
  settings: Record<string, unknown>;
  /** Install this VSIX with `code-server --install-extension`, as a user does; default: the checkout, unpacked. */
  vsix?: string;
  /** Which code-server (default: codeServerPath) and the environment it runs in (its node first on PATH, say). */
  codeServer?: string;
  env?: NodeJS.ProcessEnv;
}

export async function startVsCode(options: VsCodeOptions): Promise<VsCode> {
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
  const codeServer = options.codeServer ?? codeServerPath;
  const env = { ...process.env, ...options.env, PASSWORD: undefined };
  if (options.vsix) {
    const installed = spawnSync(codeServer, ['--user-data-dir', userData, '--extensions-dir', extensions, '--install-extension', options.vsix], { encoding: 'utf8', env, timeout: 120_000 });
    if (installed.status !== 0 || !/was successfully installed/.test(installed.stdout)) {
      throw new Error(`code-server --install-extension ${options.vsix} failed (${installed.status}):\n${installed.stdout}\n${installed.stderr}`);
    }
  } else {
    // The unpacked extension, as VS Code installs it: <publisher>.<name>-<version>.
    const manifest = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { publisher: string; name: string; version: string };
    symlinkSync(root, path.join(extensions, `${manifest.publisher}.${manifest.name}-${manifest.version}`));
  }
  const port = await freePort();
  const server: ChildProcess = spawn(
    codeServer,
    ['--auth', 'none', '--bind-addr', `127.0.0.1:${port}`, '--disable-telemetry', '--disable-update-check', '--disable-workspace-trust', '--user-data-dir', userData, '--extensions-dir', extensions, workspace],
    { stdio: ['ignore', 'pipe', 'pipe'], env },
  );
  let serverLog = '';
  server.stdout?.on('data', (chunk) => (serverLog += chunk));
  server.stderr?.on('data', (chunk) => (serverLog += chunk));
  // Listening, or a clear failure: a missing binary (spawn error), an early exit, or a minute of silence.
  await new Promise<void>((resolve, reject) => {
    const done = (error?: Error) => {
      clearInterval(check);
      clearTimeout(timer);
      server.off('error', done).off('exit', exited);
      if (error) {
        server.kill();
        reject(error);
      } else resolve();
    };
    const exited = (code: number | null) => done(new Error(`code-server (${codeServer}) exited with code ${code} before listening:\n${serverLog}`));
    const timer = setTimeout(() => done(new Error(`code-server (${codeServer}) did not start within 60 s:\n${serverLog}`)), 60_000);
    const check = setInterval(() => serverLog.includes('HTTP server listening') && done(), 100);
    server.once('error', done).once('exit', exited);
  });
  let browser: Browser | undefined;
  try {
    browser = await chromium.launch({
    executablePath: chromiumPath,
    // SwiftShader gives the cluster map WebGL2 without a GPU.
    args: ['--no-sandbox', '--disable-gpu', '--enable-unsafe-swiftshader', '--use-angle=swiftshader', '--disable-dev-shm-usage', '--disable-quic', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    // Crashes and console errors end up in failure messages (describeScreen).
    page.on('crash', () => pageEvents.push('the page crashed'));
    page.on('pageerror', (error) => pageEvents.push(`page error: ${error.message}`));
    page.on('console', (message) => message.type() === 'error' && pageEvents.push(`console: ${message.text().slice(0, 300)}`));
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
          // As a hand clicks: with a webview open, a menu item ignores a press and release in the same instant.
          await entry.click({ delay: 100 });
          return;
        }
        await page.keyboard.press('Escape');
      }
      throw new Error(`the context menu of "${row}" has no "${item}"`);
    },
    async expand(folder) {
      const row = page.locator('.explorer-folders-view .monaco-list-row').filter({ has: page.locator('.label-name', { hasText: new RegExp(`^${folder}$`) }) }).first();
      await row.waitFor();
      if ((await row.getAttribute('aria-expanded')) !== 'true') await row.click();
      await page.waitForFunction((el) => el?.getAttribute('aria-expanded') === 'true', await row.elementHandle(), { timeout: 10_000 });
    },
    async command(title) {
      await page.keyboard.press('F1');
      const input = page.locator('.quick-input-widget input');
      await input.waitFor();
      await input.fill(`>${title}`);
      await page.locator('.quick-input-list .monaco-list-row', { hasText: title }).first().waitFor();
      await page.keyboard.press('Enter');
    },
    async typeInPalette(text) {
      await page.keyboard.press('F1');
      const input = page.locator('.quick-input-widget input');
      await input.waitFor();
      await page.keyboard.type(text, { delay: 20 });
      // The list settles after the last key: wait until its first row matches what was typed so far.
      await page.waitForFunction(
        (typed) => {
          const input = document.querySelector<HTMLInputElement>('.quick-input-widget input');
          return input?.value.endsWith(typed) && document.querySelectorAll('.quick-input-list .monaco-list-row').length > 0;
        },
        text,
        { timeout: 10_000 },
      );
      await page.waitForTimeout(300);
      return this.quickPickRows();
    },
    async quickPickRows() {
      const rows = page.locator('.quick-input-list .monaco-list-row');
      await rows.first().waitFor({ timeout: 30_000 });
      // Rows are virtualised and absolutely placed: order them by their top edge.
      const placed = await rows.evaluateAll((elements) => elements.map((element) => ({ top: element.getBoundingClientRect().top, text: (element.textContent ?? '').trim() })));
      return placed.sort((a, b) => a.top - b.top).map((row) => row.text);
    },
    async notificationButton(message, button, timeoutMs = 30_000) {
      const toast = page.locator('.notification-toast', { has: page.locator('.notification-list-item-message', { hasText: message }) });
      await toast.first().waitFor({ timeout: timeoutMs });
      await toast.first().locator('.monaco-button', { hasText: button }).first().click();
    },
    async webviewWith(name, timeoutMs = 60_000) {
      const deadline = Date.now() + timeoutMs;
      while (Date.now() < deadline) {
        for (const frame of page.frames().filter((f) => f !== page.mainFrame())) {
          // A frame still swapping in (webviews load a pending frame first) can leave a query hanging: bound it.
          const count = await Promise.race([frame.locator(`[aria-label="${name}"], img[alt="${name}"]`).count().catch(() => 0), delay(2000).then(() => 0)]);
          if (count) return frame;
        }
        await page.waitForTimeout(250);
      }
      throw new Error(`no webview shows "${name}" after ${timeoutMs / 1000} s.\n${await describeScreen(page, userData)}`);
    },
    describeScreen: () => describeScreen(page, userData),
    async close() {
      // For debugging a failure: the last screen and the workspace (runs included) land in CL_E2E_LOG.
      if (process.env.CL_E2E_LOG) {
        await page.screenshot({ path: path.join(process.env.CL_E2E_LOG, 'last.png') }).catch(() => undefined);
        cpSync(workspace, path.join(process.env.CL_E2E_LOG, 'workspace'), { recursive: true });
      }
      await browser.close();
      server.kill();
      rmSync(base, { recursive: true, force: true });
    },
  };
  }
}

const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Editor tabs, notification texts and webview frame addresses: enough to tell from a CI log why a step failed. */
const pageEvents: string[] = [];

async function describeScreen(page: Page, userData: string): Promise<string> {
  const texts = async (selector: string) => (await page.locator(selector).allTextContents().catch(() => [] as string[])).map((t) => t.trim()).filter(Boolean);
  const tabs = await texts('.tabs-container .tab .label-name');
  const notifications = await texts('.notification-toast .notification-list-item-message');
  const rows = await texts('.explorer-folders-view .monaco-list-row');
  // An open question (a quick pick or a folder dialog) and the status bar: a step can stall on either.
  const quickInput = (await page.locator('.quick-input-widget').isVisible().catch(() => false))
    ? [...(await texts('.quick-input-widget .quick-input-title')), ...(await texts('.quick-input-widget .quick-input-list .monaco-list-row')).slice(0, 8)]
    : [];
  const status = await texts('.statusbar-item');
  const frames = page.frames().filter((f) => f !== page.mainFrame()).map((f) => f.url().replace(/\?.*/, '').slice(-80) + (f.isDetached() ? ' (detached)' : ''));
  // What each webview page shows, in short: an empty page or a missing section tells which message never came.
  const frameTexts = await Promise.all(
    page.frames().filter((f) => f !== page.mainFrame() && !f.isDetached()).map(async (f) => (await f.locator('body').innerText({ timeout: 1000 }).catch(() => '')).replace(/\s+/g, ' ').trim().slice(0, 160)),
  );
  const log = findFile(path.join(userData, 'logs'), 'Cluster Lens.log');
  const logTail = log ? readFileSync(log, 'utf8').split('\n').slice(-15).join('\n') : '(no extension log)';
  return [`tabs: ${tabs.join(' | ') || '(none)'}`, `notifications: ${notifications.join(' | ') || '(none)'}`, `explorer: ${rows.join(' | ')}`, `quick input: ${quickInput.join(' | ') || '(closed)'}`, `status bar: ${status.filter((text) => /Cluster Lens/.test(text)).join(' | ') || '(no Cluster Lens item)'}`, `frames: ${frames.join(' | ')}`, `frame texts: ${frameTexts.filter(Boolean).map((text) => `"${text}"`).join(' | ') || '(none)'}`, `page events (last 10):\n${pageEvents.slice(-10).join('\n') || '(none)'}`, `extension log:\n${logTail}`].join('\n');
}

function findFile(dir: string, name: string): string | undefined {
  if (!existsSync(dir)) return undefined;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isFile() && entry.name === name) return full;
    if (entry.isDirectory()) {
      const found = findFile(full, name);
      if (found) return found;
    }
  }
  return undefined;
}
