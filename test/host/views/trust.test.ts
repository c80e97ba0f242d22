// Restricted Mode: the views send the engine nothing that loads a model while the workspace is untrusted.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { loadsModel, mayRequest, TrustRequiredError, trustGatedEngine, type EngineRequester, type WorkRequestType } from '../../../src/host/views/trust';

const root = path.resolve(__dirname, '../../..');
const modelLoading: WorkRequestType[] = ['train', 'index', 'neighbours', 'evaluate', 'explain', 'evaluate-explanations', 'evaluate-counterfactuals', 'exportOnnx'];
const browsing: WorkRequestType[] = ['overview', 'mapPoints', 'layout', 'duplicates', 'outliers', 'exportAssignments'];

test('untrusted: every request that can load a model or open onnxruntime is refused; browsing stored data is not', () => {
  assert.deepEqual(Object.keys(loadsModel).sort(), [...modelLoading, ...browsing].sort(), 'every request type is classified');
  for (const type of modelLoading) {
    assert.equal(mayRequest(type, false), false, type);
    assert.equal(mayRequest(type, true), true, type);
  }
  for (const type of browsing) assert.equal(mayRequest(type, false), true, type);
});

test('what the untrusted views may ask, the engine runs without opening a device (onnxruntime)', () => {
  // worker.ts picks a device (and so onnxruntime) for every request outside its device-free list.
  const worker = readFileSync(path.join(root, 'src/engine/worker.ts'), 'utf8');
  const list = /const deviceFree = \[([^\]]*)\]/.exec(worker);
  assert.ok(list, 'worker.ts still names its device-free requests');
  const deviceFree = new Set([...list[1].matchAll(/'([^']+)'/g)].map((match) => match[1]));
  for (const type of browsing) assert.ok(deviceFree.has(type), `${type} is allowed untrusted but the worker opens a device for it`);
});

test('the gate: a neighbours request never reaches the engine while untrusted, and does once trusted', async () => {
  const sent: string[] = [];
  const engine = { request: async (request: { type: string }) => (sent.push(request.type), { kind: request.type }) } as unknown as EngineRequester;
  let trusted = false;
  const gated = trustGatedEngine(engine, () => trusted);
  await assert.rejects(gated.request({ type: 'neighbours', runDir: '/run', image: '/images/a.png', k: 12 }), (error: unknown) => {
    assert.ok(error instanceof TrustRequiredError);
    assert.equal(error.request, 'neighbours');
    assert.match(error.message, /untrusted workspace .*Trust the workspace/);
    return true;
  });
  await assert.rejects(gated.request({ type: 'explain', runDir: '/run', image: '/images/a.png', method: 'gradcam' }), TrustRequiredError);
  await gated.request({ type: 'overview', runDir: '/run' });
  await gated.request({ type: 'duplicates', runDir: '/run' });
  assert.deepEqual(sent, ['overview', 'duplicates']);
  trusted = true;
  await gated.request({ type: 'neighbours', runDir: '/run', image: '/images/a.png', k: 12 });
  assert.deepEqual(sent, ['overview', 'duplicates', 'neighbours']);
});

test('the views reach the engine only through the gate', () => {
  for (const view of ['clustersView.ts', 'clusterMapPanel.ts', 'explainPanel.ts']) {
    const source = readFileSync(path.join(root, 'src/host/views', view), 'utf8');
    assert.ok(!/session\.engine\.request\(/.test(source), `${view} calls the engine directly`);
    assert.match(source, /trustGatedEngine\(/, view);
  }
  const clusters = readFileSync(path.join(root, 'src/host/views/clustersView.ts'), 'utf8');
  // Untrusted, it says why and offers the trust editor.
  assert.match(clusters, /manageTrustCommand/);
  assert.match(clusters, /mayRequest\('neighbours'/);
});
