/** The package as npm users get it: packed, installed from the tarball, required and type-checked. */
import * as path from 'path';
import { packAndUse } from '../../../test-utils/pack';

jest.setTimeout(120_000);

it('packs, installs from the tarball and imports in a scratch folder', () => {
  const { listing, output } = packAndUse({
    pkgDir: path.resolve(__dirname, '..'),
    js: "const d = require('@causalfusion/diffusion').createDiffusion({ respacing: 'ddim25' }); console.log(d.timestepMap[1], d.numTimesteps)",
    ts:
      "import { createDiffusion, GaussianDiffusion } from '@causalfusion/diffusion';\n" +
      "const d: GaussianDiffusion = createDiffusion({ respacing: '50' });\n" +
      'const n: number = d.numTimesteps;\nexport { n };\n',
  });
  // Only the build output and the README ship; no sources or tests.
  expect(listing).toMatch(/dist\/index\.js/);
  expect(listing).toMatch(/dist\/index\.d\.ts/);
  expect(listing).not.toMatch(/\.test\./);
  expect(output.trim()).toBe('40 25');
});
