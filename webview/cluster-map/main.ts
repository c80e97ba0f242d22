// Cluster map: every image as a point, drawn by WebGL2 from typed arrays fetched as one binary file (map-points.bin).
// Wheel zooms, Shift-drag (or the middle button) pans, hover shows a thumbnail, click explains (Ctrl/Cmd-click
// opens), dragging draws a lasso whose images show as a gallery that can be copied or saved as a file list.
import './cluster-map.css';
import '@vscode-elements/elements/dist/vscode-button/index.js';
import '@vscode-elements/elements/dist/vscode-option/index.js';
import '@vscode-elements/elements/dist/vscode-single-select/index.js';
import type { MapColouring, MapLayout } from '../../src/protocol/mapPoints';
import type { FromClusterMap, ToClusterMap } from '../../src/protocol/webview';
import { clusterRgb, imageUrl, isDarkTheme } from '../shared/palette';
import { connect, element, themeColor } from '../shared/vscode';
import { hexToRgb, rampRgb } from './colours';
import { PointGrid } from './pointGrid';
import { decodePoints, shuffledOrder, type Points } from './points';
import { createRenderer } from './renderer';

interface MapState {
  selection: number[];
  layout?: MapLayout;
  colouring?: MapColouring;
}

const root = document.getElementById('root')!;
const header = element('p', { class: 'header', role: 'status' }, 'Waiting for the run…');
const toolbar = element('div', { class: 'toolbar', role: 'toolbar', 'aria-label': 'Map options' });
// vscode-elements' controls, as in the other panels: the theme's look, keyboard handling and focus rings.
const layoutSelect = element('vscode-single-select' as 'select', { 'aria-label': 'Layout' });
const colourSelect = element('vscode-single-select' as 'select', { 'aria-label': 'Colour by' });
const resetButton = element('vscode-button' as 'button', { secondary: '' }, 'Reset view');
toolbar.append(element('label', {}, 'Layout '), layoutSelect, element('label', {}, 'Colour by '), colourSelect, resetButton);
const stage = element('div', { class: 'stage' });
const canvas = element('canvas', { role: 'img', 'aria-label': 'Cluster map', tabindex: '0' });
const overlay = element('canvas', { class: 'overlay', 'aria-hidden': 'true' });
const tooltip = element('div', { class: 'tooltip', hidden: '' });
const tooltipImage = element('img', { alt: '' });
const tooltipText = element('span');
tooltip.append(tooltipImage, tooltipText);
stage.append(canvas, overlay, tooltip);
const selectionBar = element('div', { class: 'selection-bar', hidden: '' });
const selectionTitle = element('h3', {}, '');
const copyButton = element('vscode-button' as 'button', {}, 'Copy paths');
const saveButton = element('vscode-button' as 'button', { secondary: '' }, 'Save as file list…');
selectionBar.append(selectionTitle, copyButton, saveButton);
const selectionGallery = element('div', { class: 'gallery', role: 'list', 'aria-label': 'Selection' });
root.append(header, toolbar, stage, selectionBar, selectionGallery);

let points: Points | undefined;
let imageBase = '';
let runName = '';
let clusterCount = 0;
let layout: MapLayout = 'pca';
let colouring: MapColouring = 'cluster';
let selection: number[] = [];
let selected: Uint8Array | undefined;
/** The view: data point at the canvas centre and CSS pixels per data unit. */
const view = { centreX: 0, centreY: 0, scale: 1 };
let widthPx = 0;
let heightPx = 0;
const marginPx = 10;

// ---------------------------------------------------------------- WebGL

const gl = canvas.getContext('webgl2', { antialias: false, premultipliedAlpha: false });
const renderer = gl ? createRenderer(gl) : undefined;

/** Each drawn frame's duration in ms (issuing the draw), for the benchmark. */
const frameTimesMs: number[] = [];
let framePending = false;
/**
 * While the view moves, only this many points (a uniform sample) are drawn; all of them once it rests. The budget
 * follows the renderer: when frames come late (the wait from a draw request to its animation frame, smoothed, past
 * about two frames) it shrinks, and when they come on time it grows, up to every point on a GPU.
 */
let movingPointBudget = 50_000;
const budgetRange = { min: 20_000, max: 2_000_000 };
let drawRequestedAt = 0;
let smoothedWaitMs = 0;
/**
 * A seeded permutation of the points, the order in which they sit in the GPU buffers: any prefix is a uniform
 * sample, so a moving view draws drawArrays(0, budget) with no index buffer. Picking and the lasso read the
 * layout's own arrays, so they always see every point.
 */
let drawOrder: Uint32Array = new Uint32Array(0);
/** How many points the last frame drew (tests read it). */
let lastDrawnPoints = 0;
let moving = false;
let restTimer: ReturnType<typeof setTimeout> | undefined;

function requestDraw(): void {
  if (framePending) return;
  framePending = true;
  drawRequestedAt = performance.now();
  requestAnimationFrame(() => {
    framePending = false;
    if (moving) adaptBudget(performance.now() - drawRequestedAt);
    draw();
  });
}

/** A renderer that keeps up answers a request within one frame (≤ 17 ms at 60 Hz); a busy one makes it wait. */
function adaptBudget(waitMs: number): void {
  smoothedWaitMs = 0.7 * smoothedWaitMs + 0.3 * waitMs;
  if (smoothedWaitMs > 30) movingPointBudget = Math.max(budgetRange.min, Math.round(movingPointBudget * 0.85));
  else if (smoothedWaitMs < 14) movingPointBudget = Math.min(budgetRange.max, Math.round(movingPointBudget * 1.1));
}

/** Zoom and pan draw a sample at frame rate, then everything 150 ms after the last move. */
function viewMoved(): void {
  moving = true;
  clearTimeout(restTimer);
  restTimer = setTimeout(() => {
    moving = false;
    requestDraw();
  }, 150);
  requestDraw();
}

function pointSizePx(): number {
  const count = points?.count ?? 0;
  const base = count > 200_000 ? 1.5 : count > 20_000 ? 2.5 : 4;
  // Points grow a little as one zooms in, so sparse regions stay visible.
  const zoom = view.scale / fitScale();
  return Math.min(12, base * Math.max(1, Math.sqrt(zoom)));
}

function draw(): void {
  if (!gl || !renderer || !points) return;
  const started = performance.now();
  const ratio = window.devicePixelRatio || 1;
  gl.viewport(0, 0, canvas.width, canvas.height);
  const background = hexToRgb(themeColor('editor-background', isDarkTheme() ? '#1e1e1e' : '#ffffff'));
  gl.clearColor(background[0] / 255, background[1] / 255, background[2] / 255, 1);
  gl.clear(gl.COLOR_BUFFER_BIT);
  gl.enable(gl.BLEND);
  gl.blendFunc(gl.SRC_ALPHA, gl.ONE_MINUS_SRC_ALPHA);
  gl.useProgram(renderer.program);
  gl.bindVertexArray(renderer.vertexArray);
  gl.uniform2f(renderer.uniforms.centre, view.centreX, view.centreY);
  gl.uniform2f(renderer.uniforms.scale, (2 * view.scale) / widthPx, (2 * view.scale) / heightPx);
  const size = pointSizePx() * ratio;
  gl.uniform1f(renderer.uniforms.pointSize, size);
  gl.uniform1f(renderer.uniforms.round, size >= 3 ? 1 : 0);
  lastDrawnPoints = moving ? Math.min(points.count, movingPointBudget) : points.count;
  gl.drawArrays(gl.POINTS, 0, lastDrawnPoints);
  frameTimesMs.push(performance.now() - started);
  if (frameTimesMs.length > 1000) frameTimesMs.splice(0, frameTimesMs.length - 1000);
}

// ---------------------------------------------------------------- data

/** The current layout's points in a grid: its bounds, hover and lasso picking. */
let grid = new PointGrid(new Float32Array(0), 0);

function useLayout(next: MapLayout): void {
  if (!points || !gl || !renderer) return;
  const coordinates = points.layouts[next] ?? points.layouts.pca!;
  layout = points.layouts[next] ? next : 'pca';
  grid = new PointGrid(coordinates, points.count);
  const shuffled = new Float32Array(2 * points.count);
  for (let k = 0; k < points.count; k++) {
    shuffled[2 * k] = coordinates[2 * drawOrder[k]];
    shuffled[2 * k + 1] = coordinates[2 * drawOrder[k] + 1];
  }
  gl.bindBuffer(gl.ARRAY_BUFFER, renderer.positionBuffer);
  gl.bufferData(gl.ARRAY_BUFFER, shuffled, gl.STATIC_DRAW);
  layoutSelect.value = layout;
  resetView();
}

function recolour(): void {
  if (!points || !gl || !renderer) return;
  const colours = new Uint8Array(points.count * 4);
  const dark = isDarkTheme();
  const clusterPalette = clusterRgb(Math.max(1, points.header.prototypes), dark);
  const labelPalette = clusterRgb(Math.max(1, points.header.labelNames.length), dark);
  let maxOutlier = 0;
  if (colouring === 'outlier' && points.outliers) for (const score of points.outliers) maxOutlier = Math.max(maxOutlier, score);
  for (let k = 0; k < points.count; k++) {
    const i = drawOrder[k];
    let rgb: [number, number, number];
    if (colouring === 'label') rgb = points.labels[i] >= 0 ? labelPalette[points.labels[i] % labelPalette.length] : [128, 128, 128];
    else if (colouring === 'confidence') rgb = rampRgb(points.confidences[i]);
    else if (colouring === 'outlier' && points.outliers) rgb = rampRgb(points.outliers[i] / (maxOutlier || 1));
    else rgb = clusterPalette[points.clusters[i] % clusterPalette.length];
    colours.set(rgb, 4 * k);
    colours[4 * k + 3] = selected && !selected[i] ? 40 : 230;
  }
  gl.bindBuffer(gl.ARRAY_BUFFER, renderer.colourBuffer);
  gl.bufferData(gl.ARRAY_BUFFER, colours, gl.STATIC_DRAW);
  colourSelect.value = colouring;
  requestDraw();
}

function fitScale(): number {
  const { bounds } = grid;
  return Math.min((widthPx - 2 * marginPx) / (bounds.maxX - bounds.minX || 1), (heightPx - 2 * marginPx) / (bounds.maxY - bounds.minY || 1));
}

function resetView(): void {
  const { bounds } = grid;
  view.centreX = (bounds.minX + bounds.maxX) / 2;
  view.centreY = (bounds.minY + bounds.maxY) / 2;
  view.scale = fitScale();
  requestDraw();
}

function resize(): void {
  const ratio = window.devicePixelRatio || 1;
  const previousFit = points ? fitScale() : 0;
  widthPx = Math.max(200, stage.clientWidth);
  heightPx = Math.max(200, Math.round(window.innerHeight * 0.62));
  for (const surface of [canvas, overlay]) {
    surface.width = Math.round(widthPx * ratio);
    surface.height = Math.round(heightPx * ratio);
    surface.style.width = `${widthPx}px`;
    surface.style.height = `${heightPx}px`;
  }
  if (points && previousFit > 0) view.scale *= fitScale() / previousFit;
  requestDraw();
}

// ---------------------------------------------------------------- coordinates and picking

function toScreen(x: number, y: number): { x: number; y: number } {
  return { x: widthPx / 2 + (x - view.centreX) * view.scale, y: heightPx / 2 - (y - view.centreY) * view.scale };
}

function toData(x: number, y: number): { x: number; y: number } {
  return { x: view.centreX + (x - widthPx / 2) / view.scale, y: view.centreY - (y - heightPx / 2) / view.scale };
}

const pickRadiusPx = 8;

/** The point drawn nearest the canvas position, within a few pixels. */
function nearestPoint(screenX: number, screenY: number): number | undefined {
  if (!points) return undefined;
  const centre = toData(screenX, screenY);
  return grid.nearest(centre.x, centre.y, pickRadiusPx / view.scale);
}

/** The points inside a lasso drawn in canvas pixels, tested in data units (no per-point screen transform). */
function pointsInLasso(polygon: { x: number; y: number }[]): number[] {
  return points ? grid.inside(polygon.map((p) => toData(p.x, p.y))) : [];
}

// ---------------------------------------------------------------- overlay: hover ring and lasso

let lasso: { x: number; y: number }[] | undefined;
let hovered: number | undefined;

/** Whether the overlay holds a mark: a pan with nothing on it then leaves the layer alone (no re-upload per frame). */
let overlayMarked = false;

function drawOverlay(): void {
  const hasMarks = (hovered !== undefined && points !== undefined) || (lasso !== undefined && lasso.length > 1);
  if (!hasMarks && !overlayMarked) return;
  overlayMarked = hasMarks;
  const context = overlay.getContext('2d')!;
  const ratio = window.devicePixelRatio || 1;
  context.setTransform(ratio, 0, 0, ratio, 0, 0);
  context.clearRect(0, 0, widthPx, heightPx);
  if (hovered !== undefined && points) {
    const coordinates = points.layouts[layout]!;
    const at = toScreen(coordinates[2 * hovered], coordinates[2 * hovered + 1]);
    context.strokeStyle = themeColor('focusBorder', '#007fd4');
    context.lineWidth = 2;
    context.strokeRect(at.x - 5, at.y - 5, 10, 10);
  }
  if (lasso && lasso.length > 1) {
    context.strokeStyle = themeColor('foreground', '#888');
    context.setLineDash([4, 3]);
    context.beginPath();
    lasso.forEach((p, i) => (i ? context.lineTo(p.x, p.y) : context.moveTo(p.x, p.y)));
    context.stroke();
    context.setLineDash([]);
  }
}

// ---------------------------------------------------------------- interaction

function pointerPosition(event: MouseEvent): { x: number; y: number } {
  const rect = canvas.getBoundingClientRect();
  return { x: event.clientX - rect.left, y: event.clientY - rect.top };
}

function zoomAt(screenX: number, screenY: number, factor: number): void {
  const anchor = toData(screenX, screenY);
  view.scale = Math.min(fitScale() * 10_000, Math.max(fitScale() / 4, view.scale * factor));
  // Keep the data point under the cursor where it was.
  view.centreX = anchor.x - (screenX - widthPx / 2) / view.scale;
  view.centreY = anchor.y + (screenY - heightPx / 2) / view.scale;
  viewMoved();
  drawOverlay();
}

function panBy(dxPx: number, dyPx: number): void {
  view.centreX -= dxPx / view.scale;
  view.centreY += dyPx / view.scale;
  viewMoved();
  drawOverlay();
}

let dragStart: { x: number; y: number } | undefined;
let panFrom: { x: number; y: number } | undefined;

canvas.addEventListener('mousedown', (event) => {
  const position = pointerPosition(event);
  if (event.button === 1 || event.shiftKey) {
    panFrom = position;
    event.preventDefault();
    return;
  }
  if (event.button !== 0) return;
  dragStart = position;
  lasso = [position];
});
canvas.addEventListener('mousemove', (event) => {
  const position = pointerPosition(event);
  if (panFrom) {
    panBy(position.x - panFrom.x, position.y - panFrom.y);
    panFrom = position;
    return;
  }
  if (dragStart && lasso) {
    lasso.push(position);
    drawOverlay();
    return;
  }
  hovered = nearestPoint(position.x, position.y);
  drawOverlay();
  if (hovered === undefined || !points) {
    tooltip.hidden = true;
    return;
  }
  tooltipImage.src = imageUrl(imageBase, points.paths[hovered]);
  tooltipText.textContent = `${points.paths[hovered]} · cluster ${points.clusters[hovered]}`;
  tooltip.style.left = `${Math.min(position.x + 14, widthPx - 160)}px`;
  tooltip.style.top = `${position.y + 14}px`;
  tooltip.hidden = false;
});
canvas.addEventListener('mouseleave', () => {
  tooltip.hidden = true;
  hovered = undefined;
  drawOverlay();
});
window.addEventListener('mouseup', (event) => {
  if (panFrom) {
    panFrom = undefined;
    return;
  }
  const end = pointerPosition(event);
  const polygon = lasso;
  const start = dragStart;
  dragStart = undefined;
  lasso = undefined;
  drawOverlay();
  if (!points || !start || !polygon) return;
  // A drag that never left a few pixels is a click; a lasso may end where it began.
  const travelled = Math.max(...polygon.map((p) => Math.hypot(p.x - start.x, p.y - start.y)), Math.hypot(end.x - start.x, end.y - start.y));
  if (travelled < 4) {
    const hit = nearestPoint(end.x, end.y);
    if (hit !== undefined) post({ type: event.ctrlKey || event.metaKey ? 'webview.openImage' : 'webview.explainImage', path: points.paths[hit] });
    return;
  }
  const chosen = pointsInLasso(polygon);
  showSelection(chosen);
  post({ type: 'map.selection', imageIndices: chosen });
});
canvas.addEventListener(
  'wheel',
  (event) => {
    event.preventDefault();
    const position = pointerPosition(event);
    zoomAt(position.x, position.y, Math.exp(-event.deltaY * 0.0015));
  },
  { passive: false },
);
canvas.addEventListener('keydown', (event) => {
  const step = 40;
  const actions: Record<string, () => void> = {
    ArrowLeft: () => panBy(step, 0),
    ArrowRight: () => panBy(-step, 0),
    ArrowUp: () => panBy(0, step),
    ArrowDown: () => panBy(0, -step),
    '+': () => zoomAt(widthPx / 2, heightPx / 2, 1.25),
    '=': () => zoomAt(widthPx / 2, heightPx / 2, 1.25),
    '-': () => zoomAt(widthPx / 2, heightPx / 2, 0.8),
    '0': resetView,
    Escape: () => showSelection([]),
  };
  const action = actions[event.key];
  if (action) {
    event.preventDefault();
    action();
  }
});
resetButton.addEventListener('click', resetView);
layoutSelect.addEventListener('change', () => {
  const wanted = layoutSelect.value as MapLayout;
  if (points && !points.layouts[wanted]) {
    header.textContent = 'Computing the UMAP layout…';
    layoutSelect.value = layout;
    post({ type: 'map.computeLayout', layout: wanted });
    return;
  }
  useLayout(wanted);
  saveState();
});
colourSelect.addEventListener('change', () => {
  colouring = colourSelect.value as MapColouring;
  recolour();
  saveState();
});
copyButton.addEventListener('click', () => points && post({ type: 'map.copyPaths', paths: selection.map((i) => points!.paths[i]) }));
saveButton.addEventListener('click', () => points && post({ type: 'map.savePaths', paths: selection.map((i) => points!.paths[i]) }));

const galleryLimit = 200;
function showSelection(indices: number[]): void {
  selection = indices;
  selected = undefined;
  if (points && indices.length > 0) {
    selected = new Uint8Array(points.count);
    for (const i of indices) if (i < points.count) selected[i] = 1;
  }
  recolour();
  saveState();
  selectionGallery.replaceChildren();
  selectionBar.hidden = !points || indices.length === 0;
  if (!points || indices.length === 0) return;
  selectionTitle.textContent = `${indices.length.toLocaleString('en')} selected${indices.length > galleryLimit ? ` (showing ${galleryLimit})` : ''}`;
  for (const i of indices.slice(0, galleryLimit)) {
    const figure = element('figure', { role: 'listitem', title: points.paths[i], tabindex: '0' });
    const image = element('img', { alt: points.paths[i], loading: 'lazy' });
    image.src = imageUrl(imageBase, points.paths[i]);
    figure.append(image, element('figcaption', {}, `cluster ${points.clusters[i]}`));
    figure.addEventListener('click', () => post({ type: 'webview.explainImage', path: points!.paths[i] }));
    selectionGallery.append(figure);
  }
}

/** Selections past this many images are not kept across reloads (the state is JSON). */
const storedSelectionLimit = 10_000;
function saveState(): void {
  vscode.setState({ selection: selection.length <= storedSelectionLimit ? selection : [], layout, colouring });
}

function fillSelects(): void {
  if (!points) return;
  layoutSelect.replaceChildren(
    element('vscode-option' as 'option', layout === 'pca' ? { value: 'pca', selected: '' } : { value: 'pca' }, 'PCA'),
    element('vscode-option' as 'option', layout === 'umap' ? { value: 'umap', selected: '' } : { value: 'umap' }, points.layouts.umap ? 'UMAP' : 'UMAP (compute…)'),
  );
  const colourings: [MapColouring, string, boolean][] = [
    ['cluster', 'Cluster', true],
    ['label', 'Label (folder)', points.header.labelNames.length > 0],
    ['confidence', 'Confidence', true],
    ['outlier', 'Outlier score', points.outliers !== undefined],
  ];
  colourSelect.replaceChildren(
    ...colourings.map(([value, text, enabled]) => element('vscode-option' as 'option', { value, ...(enabled ? {} : { disabled: '' }), ...(value === colouring ? { selected: '' } : {}) }, text)),
  );
}

/** Timings of the last load, for the benchmark: fetch, decode, upload and first frame. */
const loadTimings: Record<string, number> = {};

async function load(message: Extract<ToClusterMap, { type: 'map.points' }>): Promise<void> {
  const started = performance.now();
  imageBase = message.imageBase;
  runName = message.runName;
  clusterCount = message.clusters;
  header.textContent = 'Loading the map…';
  const response = await fetch(message.pointsUrl);
  if (!response.ok) throw new Error(`cannot load the map points (${response.status})`);
  const buffer = await response.arrayBuffer();
  loadTimings.fetchMs = performance.now() - started;
  points = decodePoints(buffer);
  loadTimings.decodeMs = performance.now() - started - loadTimings.fetchMs;
  if (!gl) {
    header.textContent = `${points.count.toLocaleString('en')} images in ${clusterCount} clusters (${runName}), but the map needs WebGL2, which this window does not offer.`;
    return;
  }
  const state = vscode.getState();
  drawOrder = shuffledOrder(points.count);
  fillSelects();
  colouring = state?.colouring && state.colouring !== 'outlier' ? state.colouring : colouring;
  if (colouring === 'label' && points.header.labelNames.length === 0) colouring = 'cluster';
  resize();
  useLayout(message.layout ?? state?.layout ?? (points.layouts.umap ? 'umap' : 'pca'));
  showSelection((state?.selection ?? []).filter((i) => i < points!.count));
  header.textContent = `${points.count.toLocaleString('en')} images in ${clusterCount} clusters (${runName}). Hover for a thumbnail, click to explain, Ctrl/Cmd-click to open, drag to select, wheel to zoom, Shift-drag to pan.`;
  draw();
  loadTimings.totalMs = performance.now() - started;
  root.dataset.ready = String(points.count);
}

const vscode = connect<MapState, ToClusterMap>((message) => {
  if (message.type === 'map.points') {
    load(message).catch((error: Error) => (header.textContent = `Cannot show the map: ${error.message}`));
  } else if (message.type === 'map.layoutProgress') {
    header.textContent = `${message.message} (${Math.round(100 * message.fraction)}%)`;
  } else if (message.type === 'map.layoutFailed') {
    header.textContent = message.message;
  }
});

/** What tests and the benchmark read back: the page's own view of its points and timings. */
Object.assign(window, {
  clusterMap: {
    screenPosition(index: number) {
      const coordinates = points!.layouts[layout]!;
      return toScreen(coordinates[2 * index], coordinates[2 * index + 1]);
    },
    dataToScreen: (x: number, y: number) => toScreen(x, y),
    /** Draws every point now and reads the frame back from WebGL: RGBA bytes, bottom row first. */
    readPixels(): { width: number; height: number; pixels: number[] } {
      moving = false;
      draw();
      const pixels = new Uint8Array(canvas.width * canvas.height * 4);
      gl!.readPixels(0, 0, canvas.width, canvas.height, gl!.RGBA, gl!.UNSIGNED_BYTE, pixels);
      return { width: canvas.width, height: canvas.height, pixels: Array.from(pixels) };
    },
    frameTimesMs: () => frameTimesMs.slice(),
    drawnPoints: () => lastDrawnPoints,
    movingPointBudget: () => movingPointBudget,
    loadTimings: () => ({ ...loadTimings }),
    /** Zooms and pans for `frames` animation frames; resolves with each frame's interval by the page's clock. */
    async animate(frames: number): Promise<number[]> {
      const intervals: number[] = [];
      let last = performance.now();
      for (let frame = 0; frame < frames; frame++) {
        await new Promise((resolve) => requestAnimationFrame(resolve));
        const phase = frame % 40;
        if (phase < 20) zoomAt(widthPx / 2 + 30, heightPx / 2, 1.06);
        else panBy(6, 3);
        const now = performance.now();
        intervals.push(now - last);
        last = now;
      }
      return intervals;
    },
    /** Draws every point on each of `frames` animation frames (the view at rest); resolves with each frame's interval. */
    async redrawAll(frames: number): Promise<number[]> {
      const intervals: number[] = [];
      moving = false;
      clearTimeout(restTimer);
      let last = performance.now();
      for (let frame = 0; frame < frames; frame++) {
        requestDraw();
        await new Promise((resolve) => requestAnimationFrame(resolve));
        const now = performance.now();
        intervals.push(now - last);
        last = now;
      }
      return intervals;
    },
  },
});

function post(message: FromClusterMap): void {
  (vscode.postMessage as (m: FromClusterMap) => void)(message);
}

new ResizeObserver(() => resize()).observe(stage);
post({ type: 'webview.ready' });
