// Runs the benchmark from source (the CLI has the same options: cluster-lens bench): node --import tsx scripts/bench/bench.ts
//   [--seconds 60] [--quality] [--minutes 10] [--data DIR] [--python PATH] [--backend auto] [--json]
// It drives the built engine (dist/engine.js): run `npm run build` first.
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { BackendPreference } from '../../src/protocol/options';
import { runBench } from '../../src/cli/bench';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string' },
    quality: { type: 'boolean' },
    minutes: { type: 'string' },
    data: { type: 'string' },
    python: { type: 'string' },
    backend: { type: 'string' },
    json: { type: 'boolean' },
  },
});
const number = (text: string | undefined) => (text === undefined ? undefined : Number(text));
runBench({
  json: values.json,
  seconds: number(values.seconds),
  quality: values.quality,
  minutes: number(values.minutes),
  dataDir: values.data,
  python: values.python,
  backend: values.backend as BackendPreference | undefined,
  enginePath: path.resolve(__dirname, '../../dist/engine.js'),
}).then((code) => {
  process.exitCode = code;
});
