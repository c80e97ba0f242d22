// Cluster map: a PCA scatter of every image, coloured by cluster, on one canvas.
// Hover shows a thumbnail, click explains (Ctrl/Cmd-click opens), dragging draws a lasso whose images show as a gallery.
import './cluster-map.css';
import type { FromClusterMap, RunOverview, ToClusterMap } from '../../src/protocol';
import { clusterColors, imageUrl, isDarkTheme } from '../shared/palette';
import { connect, element } from '../shared/vscode';

interface MapState {
  selection: number[];
}

const root = document.getElementById('root')!;
const header = element('p', { class: 'header', role: 'status' }, 'Waiting for the run…');
const canvas = element('canvas', { role: 'img', 'aria-label': 'Cluster map', tabindex: '0' });
const tooltip = element('div', { class: 'tooltip', hidden: '' });
const tooltipImage = element('img', { alt: '' });
const tooltipText = element('span');
tooltip.append(tooltipImage, tooltipText);
const selectionTitle = element('h3', {}, '');
const selectionGallery = element('div', { class: 'gallery', role: 'list', 'aria-label': 'Selection' });
root.append(header, canvas, tooltip, selectionTitle, selectionGallery);

let overview: RunOverview | undefined;
let imageBase = '';
let colors: string[] = [];
let screen = new Float32Array(0); // each point's canvas position, interleaved
const cellPx = 12;
let grid = new Map<number, number[]>(); // spatial hash of canvas cells → point indices, for hover
let lasso: { x: number; y: number }[] | undefined;

const vscode = connect<MapState, ToClusterMap>((message) => {
  if (message.type !== 'map.data') return;
  overview = message.overview;
  imageBase = message.imageBase;
  colors = clusterColors(overview.prototypes, isDarkTheme());
  header.textContent = `${overview.paths.length.toLocaleString('en')} images in ${overview.clusters.length} clusters. Hover for a thumbnail, click to explain, Ctrl/Cmd-click to open, drag to select.`;
  layout();
  showSelection(vscode.getState()?.selection ?? []);
});

function layout(): void {
  if (!overview) return;
  const ratio = window.devicePixelRatio || 1;
  const width = Math.max(200, root.clientWidth);
  const height = Math.max(200, Math.round(window.innerHeight * 0.6));
  canvas.width = width * ratio;
  canvas.height = height * ratio;
  canvas.style.width = `${width}px`;
  canvas.style.height = `${height}px`;
  const count = overview.paths.length;
  let [minX, maxX, minY, maxY] = [Infinity, -Infinity, Infinity, -Infinity];
  for (let i = 0; i < count; i++) {
    const [x, y] = [overview.map[2 * i], overview.map[2 * i + 1]];
    [minX, maxX, minY, maxY] = [Math.min(minX, x), Math.max(maxX, x), Math.min(minY, y), Math.max(maxY, y)];
  }
  const margin = 10;
  const scale = Math.min((width - 2 * margin) / (maxX - minX || 1), (height - 2 * margin) / (maxY - minY || 1));
  screen = new Float32Array(2 * count);
  grid = new Map();
  for (let i = 0; i < count; i++) {
    const x = margin + (overview.map[2 * i] - minX) * scale;
    const y = height - margin - (overview.map[2 * i + 1] - minY) * scale;
    screen[2 * i] = x;
    screen[2 * i + 1] = y;
    const key = cellKey(x, y);
    const bucket = grid.get(key);
    if (bucket) bucket.push(i);
    else grid.set(key, [i]);
  }
  draw();
}

function cellKey(x: number, y: number): number {
  return Math.floor(x / cellPx) * 100_000 + Math.floor(y / cellPx);
}

function draw(highlight?: number): void {
  if (!overview) return;
  const context = canvas.getContext('2d')!;
  const ratio = window.devicePixelRatio || 1;
  context.setTransform(ratio, 0, 0, ratio, 0, 0);
  context.clearRect(0, 0, canvas.width, canvas.height);
  // One fillStyle change per cluster keeps 20k points at interactive speed.
  const byCluster = new Map<number, number[]>();
  overview.assignments.forEach((cluster, i) => (byCluster.get(cluster) ?? byCluster.set(cluster, []).get(cluster)!).push(i));
  const size = overview.paths.length > 5000 ? 2 : 3;
  for (const [cluster, members] of byCluster) {
    context.fillStyle = colors[cluster % colors.length];
    for (const i of members) context.fillRect(screen[2 * i] - size / 2, screen[2 * i + 1] - size / 2, size, size);
  }
  if (highlight !== undefined) {
    context.strokeStyle = getComputedStyle(document.body).getPropertyValue('--vscode-focusBorder') || '#007fd4';
    context.lineWidth = 2;
    context.strokeRect(screen[2 * highlight] - 5, screen[2 * highlight + 1] - 5, 10, 10);
  }
  if (lasso && lasso.length > 1) {
    context.strokeStyle = getComputedStyle(document.body).getPropertyValue('--vscode-foreground') || '#888';
    context.setLineDash([4, 3]);
    context.beginPath();
    lasso.forEach((p, i) => (i ? context.lineTo(p.x, p.y) : context.moveTo(p.x, p.y)));
    context.stroke();
    context.setLineDash([]);
  }
}

function nearestPoint(x: number, y: number): number | undefined {
  let best: number | undefined;
  let bestDistance = 8 * 8;
  for (let dx = -1; dx <= 1; dx++) {
    for (let dy = -1; dy <= 1; dy++) {
      for (const i of grid.get(cellKey(x + dx * cellPx, y + dy * cellPx)) ?? []) {
        const distance = (screen[2 * i] - x) ** 2 + (screen[2 * i + 1] - y) ** 2;
        if (distance < bestDistance) [best, bestDistance] = [i, distance];
      }
    }
  }
  return best;
}

function pointerPosition(event: MouseEvent): { x: number; y: number } {
  const rect = canvas.getBoundingClientRect();
  return { x: event.clientX - rect.left, y: event.clientY - rect.top };
}

function insidePolygon(x: number, y: number, polygon: { x: number; y: number }[]): boolean {
  let inside = false;
  for (let i = 0, j = polygon.length - 1; i < polygon.length; j = i++) {
    const [a, b] = [polygon[i], polygon[j]];
    if (a.y > y !== b.y > y && x < ((b.x - a.x) * (y - a.y)) / (b.y - a.y) + a.x) inside = !inside;
  }
  return inside;
}

let dragStart: { x: number; y: number } | undefined;
canvas.addEventListener('mousedown', (event) => {
  dragStart = pointerPosition(event);
  lasso = [dragStart];
});
canvas.addEventListener('mousemove', (event) => {
  const position = pointerPosition(event);
  if (dragStart && lasso) {
    lasso.push(position);
    draw();
    return;
  }
  const hit = nearestPoint(position.x, position.y);
  if (hit === undefined || !overview) {
    tooltip.hidden = true;
    draw();
    return;
  }
  tooltipImage.src = imageUrl(imageBase, overview.paths[hit]);
  tooltipText.textContent = `${overview.paths[hit]} · cluster ${overview.assignments[hit]}`;
  tooltip.style.left = `${Math.min(position.x + 14, root.clientWidth - 160)}px`;
  tooltip.style.top = `${position.y + canvas.offsetTop + 14}px`;
  tooltip.hidden = false;
  draw(hit);
});
canvas.addEventListener('mouseleave', () => {
  tooltip.hidden = true;
});
canvas.addEventListener('mouseup', (event) => {
  const end = pointerPosition(event);
  const polygon = lasso;
  const start = dragStart;
  dragStart = undefined;
  lasso = undefined;
  if (!overview || !start || !polygon) return;
  // A drag that never left a few pixels is a click; a lasso may end where it began.
  const travelled = Math.max(...polygon.map((p) => Math.hypot(p.x - start.x, p.y - start.y)), Math.hypot(end.x - start.x, end.y - start.y));
  if (travelled < 4) {
    const hit = nearestPoint(end.x, end.y);
    if (hit !== undefined) post({ type: event.ctrlKey || event.metaKey ? 'webview.openImage' : 'webview.explainImage', path: overview.paths[hit] });
    draw();
    return;
  }
  const chosen: number[] = [];
  for (let i = 0; i < overview.paths.length; i++) if (insidePolygon(screen[2 * i], screen[2 * i + 1], polygon)) chosen.push(i);
  draw();
  showSelection(chosen);
  post({ type: 'map.selection', imageIndices: chosen });
});

const galleryLimit = 200;
function showSelection(indices: number[]): void {
  vscode.setState({ selection: indices });
  selectionGallery.replaceChildren();
  if (!overview || indices.length === 0) {
    selectionTitle.textContent = '';
    return;
  }
  selectionTitle.textContent = `${indices.length} selected${indices.length > galleryLimit ? ` (showing ${galleryLimit})` : ''}`;
  for (const i of indices.slice(0, galleryLimit)) {
    const figure = element('figure', { role: 'listitem', title: overview.paths[i], tabindex: '0' });
    const image = element('img', { alt: overview.paths[i], loading: 'lazy' });
    image.src = imageUrl(imageBase, overview.paths[i]);
    figure.append(image, element('figcaption', {}, `cluster ${overview.assignments[i]}`));
    figure.addEventListener('click', () => post({ type: 'webview.explainImage', path: overview!.paths[i] }));
    selectionGallery.append(figure);
  }
}

function post(message: FromClusterMap): void {
  (vscode.postMessage as (m: FromClusterMap) => void)(message);
}

new ResizeObserver(() => layout()).observe(root);
post({ type: 'webview.ready' });
