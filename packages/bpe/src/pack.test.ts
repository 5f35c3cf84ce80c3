/** The package as npm users get it: packed, installed from the tarball, required and type-checked. */
import * as path from 'path';
import { packAndUse } from '../../../test-utils/pack';

jest.setTimeout(120_000);

it('packs, installs from the tarball and imports in a scratch folder', () => {
  const { listing, output } = packAndUse({
    pkgDir: path.resolve(__dirname, '..'),
    js: "const d = require('@causalfusion/bpe').trainBPE(['hello hello world'], { vocabSize: 260 }); console.log(d.vocabSize, JSON.stringify(d.decode(d.encode('hello'))))",
    ts:
      "import { BPETokenizer, trainBPE } from '@causalfusion/bpe';\n" +
      "const t: BPETokenizer = trainBPE(['ab ab'], { vocabSize: 257 });\n" +
      'const n: number[] = t.encode("ab");\nexport { n };\n',
  });
  expect(listing).toMatch(/dist\/index\.js/);
  expect(listing).toMatch(/dist\/index\.d\.ts/);
  expect(listing).not.toMatch(/\.test\./);
  expect(output.trim()).toBe('260 "hello"');
});
