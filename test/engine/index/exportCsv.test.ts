// CSV export of names chosen by whoever made the images folder: a cell that a spreadsheet would read as a formula
// ("=HYPERLINK(…)", "+…", "-…", "@…", a leading tab or carriage return) is escaped as OWASP advises (a leading single
// quote, the cell quoted); JSON and Parquet keep the names as they are.
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { before, test } from 'node:test';
import { parquetReadObjects } from 'hyparquet';
import sharp from 'sharp';
import { csvLine, csvNumberCell, csvTextCell } from '../../../src/engine/index/csvCell';
import { exportAssignments } from '../../../src/engine/index/curate';
import { cachedIndex } from '../../../src/engine/index/runQueries';
import { silentContext } from '../../../src/engine/jobContext';
import { train } from '../../../src/engine/jobs/train';
import type { TrainOptions } from '../../../src/protocol/options';
import { tempDir } from '../../tempDir';

process.env.CLUSTER_LENS_THREADS ??= '1';

const formulaStarts = ['=', '+', '-', '@', '\t', '\r'];
/**
 * Image paths, each a formula or a cell that needs quoting. The probe name holds slashes, so on disk it is
 * the file `x","y").png` in the folder `=HYPERLINK("http:`, and its path in the index `=HYPERLINK("http:/x","y").png`.
 */
const hostileNames = ['=HYPERLINK("http://x","y").png', '+1+2.png', '-3+4.png', '@SUM(A1).png', '\tTAB.png', '\rCR.png', 'a,"b";c.png'].map((name) => path.posix.normalize(name));
const hyperlinkCell = `"'=HYPERLINK(""http:/x"",""y"").png"`;
/** Two first-level folders, so labels exist: one of them a formula. */
const labelFolders = ['=1+1', 'plain'];
const tinyOptions: Partial<TrainOptions> = { imageSizePx: 12, width: 4, blocksPerStage: [1, 1], projectionHiddenDim: 16, projectionDim: 8, prototypes: 4, batchSize: 8, localCrops: 1, localCropSizePx: 8, epochs: 1, minutes: 0, device: 'cpu' };
let runDir: string;

/** RFC 4180, as a spreadsheet reads it: quoted cells may hold commas, quotes (doubled) and line breaks. */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let cell = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const char = text[i];
    if (quoted) {
      if (char === '"' && text[i + 1] === '"') {
        cell += '"';
        i++;
      } else if (char === '"') quoted = false;
      else cell += char;
    } else if (char === '"' && cell === '') quoted = true;
    else if (char === ',') {
      row.push(cell);
      cell = '';
    } else if (char === '\n') {
      row.push(cell);
      rows.push(row);
      row = [];
      cell = '';
    } else cell += char;
  }
  if (cell !== '' || row.length > 0) rows.push([...row, cell]);
  return rows;
}

before(async () => {
  const imagesDir = tempDir('cl-export-csv-images-');
  const png = (seed: number) => {
    const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16"><rect width="16" height="16" fill="black"/><rect x="${seed % 6}" y="${(seed * 3) % 7}" width="8" height="${4 + (seed % 5)}" fill="${seed % 2 ? '#fff' : '#888'}"/></svg>`;
    return sharp(Buffer.from(svg)).png().toBuffer();
  };
  let seed = 0;
  for (const name of hostileNames) {
    mkdirSync(path.dirname(path.join(imagesDir, name)), { recursive: true });
    await sharp(await png(seed++)).toFile(path.join(imagesDir, name));
  }
  for (const folder of labelFolders) {
    mkdirSync(path.join(imagesDir, folder));
    for (let i = 0; i < 6; i++) await sharp(await png(seed++)).toFile(path.join(imagesDir, folder, i === 0 ? '@first.png' : `${i}.png`));
  }
  runDir = path.join(tempDir('cl-export-csv-run-'), 'run');
  await train({ imagesDir, runDir, options: tinyOptions }, silentContext());
});

test('csv cells: formula starts get a leading quote and are quoted; numbers and plain text stay as they are', () => {
  assert.equal(csvTextCell('=HYPERLINK("http://x","y").png'), `"'=HYPERLINK(""http://x"",""y"").png"`);
  for (const start of formulaStarts) assert.equal(csvTextCell(`${start}cmd`), `"'${start}cmd"`, JSON.stringify(start));
  assert.equal(csvTextCell('dogs/a.png'), 'dogs/a.png');
  assert.equal(csvTextCell('a,"b".png'), '"a,""b"".png"');
  assert.equal(csvTextCell('a;=1+1.png'), '"a;=1+1.png"');
  assert.equal(csvNumberCell(-0.25), '-0.25');
  assert.equal(csvNumberCell(Number.NEGATIVE_INFINITY), `"'-Infinity"`);
  assert.equal(csvLine(['-x', -1, 'y']), `"'-x",-1,y`);
});

test('export csv: formula-named images and labels read back as text, the rest as the index holds it', async () => {
  const index = await cachedIndex(runDir);
  const records = index.header.records;
  for (const name of hostileNames) assert.ok(records.some((record) => record.path === name), `${JSON.stringify(name)} is in the index`);
  const out = path.join(tempDir('cl-export-csv-'), 'assignments.csv');
  await exportAssignments(runDir, 'csv', out, silentContext());
  const text = readFileSync(out, 'utf8');
  // The exact cell OWASP's advice gives for the probe.
  assert.ok(text.includes(hyperlinkCell), text.slice(0, 400));
  const rows = parseCsv(text);
  assert.deepEqual(rows[0], ['path', 'cluster', 'probability', 'label', 'map_x', 'map_y', 'outlier_score']);
  assert.equal(rows.length - 1, records.length);
  const asText = (raw: string) => (formulaStarts.includes(raw[0]) ? `'${raw}` : raw);
  rows.slice(1).forEach((cells, row) => {
    assert.equal(cells.length, 7, JSON.stringify(cells));
    const [file, cluster, probability, label, x, y, outlier] = cells;
    const record = records[row];
    assert.equal(file, asText(record.path));
    assert.equal(label, record.label >= 0 ? asText(index.header.labelNames[record.label]) : '');
    // No text cell a spreadsheet would run: every one that starts like a formula is behind a quote.
    for (const cell of [file, label]) assert.ok(!formulaStarts.includes(cell[0]), `${JSON.stringify(cell)} starts a formula`);
    assert.equal(Number(cluster), index.assignments[row]);
    assert.ok(Math.abs(Number(probability) - index.probabilities.data[row * index.probabilities.dims + index.assignments[row]]) < 1e-6);
    for (const value of [x, y, outlier]) assert.ok(value !== '' && Number.isFinite(Number(value)), `${value} in ${JSON.stringify(cells)}`);
  });
  assert.ok(rows.slice(1).some((cells) => cells[3] === "'=1+1"), 'the formula label is escaped');
});

test('export json and parquet: the names stay exactly as they are on disk', async () => {
  const index = await cachedIndex(runDir);
  const paths = index.header.records.map((record) => record.path);
  const json = path.join(tempDir('cl-export-csv-'), 'assignments.json');
  await exportAssignments(runDir, 'json', json, silentContext());
  const parsed = JSON.parse(readFileSync(json, 'utf8')) as { rows: { path: string; label: string }[] };
  assert.deepEqual(parsed.rows.map((row) => row.path), paths);
  assert.ok(parsed.rows.some((row) => row.label === '=1+1'));
  const parquet = path.join(tempDir('cl-export-csv-'), 'assignments.parquet');
  await exportAssignments(runDir, 'parquet', parquet, silentContext());
  const bytes = readFileSync(parquet);
  const rows = (await parquetReadObjects({ file: bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) })) as { path: string; label: string }[];
  assert.deepEqual(rows.map((row) => row.path), paths);
  assert.ok(paths.includes('=HYPERLINK("http:/x","y").png'));
  assert.ok(rows.some((row) => row.label === '=1+1'));
});
