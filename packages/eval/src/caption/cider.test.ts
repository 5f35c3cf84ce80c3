import * as fs from 'fs';
import * as path from 'path';
import { bleu, ciderD } from './index';

// From packages/eval/src/caption up to /work, then shared/reference.
const REF = path.resolve(__dirname, '../../../../../shared/reference/cider.json');
const ref = JSON.parse(fs.readFileSync(REF, 'utf8')) as {
  corpus: { cider_d: number; bleu_1_4: number[] };
  num_images: number;
  images: { image_id: string; refs: string[]; candidate: string; tags: string[]; cider_d: number; bleu_1_4: number[] }[];
};

const gts = new Map(ref.images.map((im) => [im.image_id, im.refs]));
const res = new Map(ref.images.map((im) => [im.image_id, [im.candidate]]));

/** Relative error, or absolute error where the reference value is 0. */
function err(actual: number, expected: number): number {
  const d = Math.abs(actual - expected);
  return expected === 0 ? d : d / Math.abs(expected);
}

describe('CIDEr-D and BLEU against pycocoevalcap (cider.json)', () => {
  const cider = ciderD(gts, res);
  const bl = bleu(gts, res);

  it('covers all 50 images', () => {
    expect(ref.images).toHaveLength(ref.num_images);
    expect(cider.perImage.size).toBe(ref.num_images);
  });

  it('corpus CIDEr-D and BLEU-1..4 to 1e-9', () => {
    expect(err(cider.score, ref.corpus.cider_d)).toBeLessThan(1e-9);
    ref.corpus.bleu_1_4.forEach((b, k) => expect(err(bl.scores[k], b)).toBeLessThan(1e-9));
  });

  it('every per-image CIDEr-D and BLEU-1..4 to 1e-9', () => {
    let worst = 0;
    let where = '';
    for (const im of ref.images) {
      const e = err(cider.perImage.get(im.image_id)!, im.cider_d);
      if (e > worst) [worst, where] = [e, `CIDEr-D of image ${im.image_id} (${im.tags.join('; ')})`];
      im.bleu_1_4.forEach((b, k) => {
        const eb = err(bl.perImage.get(im.image_id)![k], b);
        if (eb > worst) [worst, where] = [eb, `BLEU-${k + 1} of image ${im.image_id} (${im.tags.join('; ')})`];
      });
    }
    console.log(`worst per-image error vs pycocoevalcap: ${worst.toExponential(2)} at ${where || '-'}`);
    expect(worst).toBeLessThan(1e-9);
  });
});
