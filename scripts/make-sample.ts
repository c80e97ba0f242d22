// Writes the shipped sample set: the first 100 Fashion-MNIST test images of each class as PNGs, plus attribution.
// Run: npx tsx scripts/make-sample.ts [idx-folder]   (default /usr/share/datasets/fashion-mnist)

import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { DEFAULT_FASHION_MNIST_DIR, FASHION_MNIST_CLASS_NAMES, writeFashionMnistPngs } from '../src/engine/data/fashionMnist';

const IMAGES_PER_CLASS = 100;

function attribution(): string {
  return `# Fashion-MNIST sample

These ${IMAGES_PER_CLASS * FASHION_MNIST_CLASS_NAMES.length} images come from **Fashion-MNIST** by Zalando Research
(Han Xiao, Kashif Rasul, Roland Vollgraf, "Fashion-MNIST: a Novel Image Dataset for Benchmarking Machine Learning
Algorithms", arXiv:1708.07747, 2017). Source: https://github.com/zalandoresearch/fashion-mnist

## What was taken
- Split: the **test** split (\`t10k-images-idx3-ubyte\`, \`t10k-labels-idx1-ubyte\`, as packaged by Debian's
  \`dataset-fashion-mnist\`).
- Images: the first ${IMAGES_PER_CLASS} images of each class, in file order.
- Each file is named by its zero-based index in the test split (\`3-dress/00013.png\` is test image 13), 28×28 8-bit greyscale PNG,
  pixel values unchanged.
- Folder names follow label order: ${FASHION_MNIST_CLASS_NAMES.map((name) => `\`${name}\``).join(', ')}.
- Regenerate with \`npx tsx scripts/make-sample.ts\`.

## Licence
The MIT License (MIT)

Copyright © 2017 Zalando SE, https://tech.zalando.com

Permission is hereby granted, free of charge, to any person obtaining a copy of this software and associated
documentation files (the “Software”), to deal in the Software without restriction, including without limitation the
rights to use, copy, modify, merge, publish, distribute, sublicense, and/or sell copies of the Software, and to permit
persons to whom the Software is furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all copies or substantial portions of the
Software.

THE SOFTWARE IS PROVIDED “AS IS”, WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING BUT NOT LIMITED TO THE
WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR
COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR
OTHERWISE, ARISING FROM, OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.
`;
}

async function main(): Promise<void> {
  const idxDir = process.argv[2] ?? DEFAULT_FASHION_MNIST_DIR;
  const outDir = path.resolve(__dirname, '..', 'sample', 'fashion-mnist');
  // Start clean so a rerun never leaves stale images behind.
  await fs.rm(outDir, { recursive: true, force: true });
  const result = await writeFashionMnistPngs({
    idxDir,
    outDir,
    splits: ['test'],
    perClassLimit: IMAGES_PER_CLASS,
    splitFolders: false,
  });
  await fs.writeFile(path.join(outDir, 'ATTRIBUTION.md'), attribution());
  console.log(`Wrote ${result.written} PNGs and ATTRIBUTION.md to ${path.relative(process.cwd(), outDir) || outDir}`);
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exitCode = 1;
});
