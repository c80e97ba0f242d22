// Runs the benchmark from source (the CLI has the same options: cluster-lens bench): node --import tsx scripts/bench/bench.ts
//   [--device auto|gpu|cpu] [--seconds 60] [--quality [--protocol 2k|10k] [--minutes 10]] [--data DIR] [--idx-dir DIR]
//   [--python PATH] [--json]
// It drives the built engine (dist/engine.js): run `npm run build` first.
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { DevicePreference } from '../../src/protocol/options';
import { runBench } from '../../src/cli/bench';

const { values } = parseArgs({
  options: {
    device: { type: 'string' },
    seconds: { type: 'string' },
    quality: { type: 'boolean' },
    protocol: { type: 'string' },
    minutes: { type: 'string' },
    data: { type: 'string' },
    'idx-dir': { type: 'string' },
    python: { type: 'string' },
    json: { type: 'boolean' },
  },
});
const number = (text: string | undefined) => (text === undefined ? undefined : Number(text));
runBench({
  json: values.json,
  seconds: number(values.seconds),
  quality: values.quality,
  protocol: values.protocol,
  minutes: number(values.minutes),
  dataDir: values.data,
  idxDir: values['idx-dir'],
  python: values.python,
  device: values.device as DevicePreference | undefined,
  enginePath: path.resolve(__dirname, '../../dist/engine.js'),
}).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`${(error as Error).message ?? error}\n`);
    process.exitCode = 1;
  },
);
