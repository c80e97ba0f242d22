// Loads a webview bundle into headless Chromium behind the same CSP shell VS Code gets, with acquireVsCodeApi stubbed.
import { existsSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { renderPanelHtml } from '../../src/host/views/webviewHtml';
import { chromiumPath, requirements, skipUnless } from '../requirements';

export { chromiumPath };
/** Outside CI a machine without Chromium skips these tests; in CI it fails them at once. */
export const skipWithoutChromium = skipUnless(requirements.chromium);

const distWebview = path.resolve(__dirname, '../../dist/webview');

export interface WebviewPage {
  origin: string;
  page: Page;
  /** Messages the panel posted to the host. */
  posted(): Promise<unknown[]>;
  /** Sends a host → webview message. */
  send(message: unknown): Promise<void>;
  close(): Promise<void>;
}

let browser: Browser | undefined;

/** `imagesDir`, when given, is served under /images/ (the stand-in for the webview URI of the images folder). */
/** `files` are served under /files/<name> as binary (the stand-in for other webview URIs, e.g. map-points.bin). */
export async function openWebview(bundle: string, options: { state?: unknown; imagesDir?: string; files?: Record<string, Uint8Array>; viewport?: { width: number; height: number } } = {}): Promise<WebviewPage> {
  // The browser first: if it cannot start, no server is left listening to keep the test process alive.
  browser ??= await chromium.launch({
    executablePath: chromiumPath,
    // SwiftShader gives WebGL2 without a GPU (the cluster map draws with it).
    args: ['--no-sandbox', '--disable-gpu', '--enable-unsafe-swiftshader', '--use-angle=swiftshader', '--disable-dev-shm-usage', '--disable-quic', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  const server: Server = createServer((request, response) => {
    const url = new URL(request.url ?? '/', 'http://localhost');
    if (url.pathname === '/') {
      const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const css = existsSync(path.join(distWebview, `${bundle}.css`)) ? `${origin}/${bundle}.css` : undefined;
      response.writeHead(200, { 'content-type': 'text/html' });
      response.end(renderPanelHtml(origin, { bundle, title: bundle, scriptUri: `${origin}/${bundle}.js`, styleUri: css }));
      return;
    }
    const relative = decodeURIComponent(url.pathname);
    const served = relative.startsWith('/files/') ? options.files?.[relative.slice('/files/'.length)] : undefined;
    if (served) {
      response.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': served.byteLength });
      response.end(served);
      return;
    }
    const file =
      options.imagesDir && relative.startsWith('/images/')
        ? path.join(options.imagesDir, path.normalize(relative.slice('/images/'.length)).replace(/^(\.\.[/\\])+/, ''))
        : path.join(distWebview, path.basename(relative));
    if (!existsSync(file)) {
      response.writeHead(404).end();
      return;
    }
    response.writeHead(200, { 'content-type': file.endsWith('.css') ? 'text/css' : file.endsWith('.png') ? 'image/png' : 'text/javascript' });
    response.end(readFileSync(file));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const errors: string[] = [];
  const page = await browser.newPage({ viewport: options.viewport ?? { width: 900, height: 700 } }).catch((error: unknown) => {
    server.close();
    throw error;
  });
  try {
    // A string, not a function: tsx would wrap named functions in a helper the page does not have.
    await page.addInitScript({
      content: `window.__posted = [];
        window.__state = ${JSON.stringify(options.state ?? null)} ?? undefined;
        window.acquireVsCodeApi = () => ({
          postMessage: (message) => window.__posted.push(message),
          getState: () => window.__state,
          setState: (state) => { window.__state = state; },
        });`,
    });
    page.on('pageerror', (error) => errors.push(error.message));
    await page.goto(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`);
  } catch (error) {
    await page.close().catch(() => undefined);
    server.close();
    throw error;
  }
  return {
    origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    page,
    posted: () => page.evaluate(() => (window as unknown as { __posted: unknown[] }).__posted),
    send: (message) => page.evaluate((m) => window.postMessage(m, '*'), message),
    close: async () => {
      await page.close();
      server.close();
      if (errors.length) throw new Error(`page errors: ${errors.join('; ')}`);
    },
  };
}

export async function closeBrowser(): Promise<void> {
  await browser?.close();
  browser = undefined;
}
