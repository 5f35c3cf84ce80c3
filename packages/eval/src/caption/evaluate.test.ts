import * as fs from 'fs';
import * as path from 'path';
import { bleu, ciderD, evaluateCaptions } from './index';

const REF = path.resolve(__dirname, '../../../../../shared/reference/cider.json');
const ref = JSON.parse(fs.readFileSync(REF, 'utf8')) as {
  corpus: { cider_d: number; bleu_1_4: number[] };
  images: { image_id: string; refs: string[]; candidate: string; cider_d: number; bleu_1_4: number[] }[];
};

describe('evaluateCaptions (COCO formats)', () => {
  // cider.json as COCO files, with numeric ids; its captions are already tokenized.
  const refsCoco = { annotations: ref.images.flatMap((im) => im.refs.map((caption) => ({ image_id: Number(im.image_id), caption }))) };
  const candsCoco = ref.images.map((im) => ({ image_id: Number(im.image_id), caption: im.candidate }));

  it('reproduces cider.json through the COCO front end (tokenize: false)', () => {
    const r = evaluateCaptions(refsCoco, candsCoco, { tokenize: false });
    expect(Math.abs(r.CIDEr - ref.corpus.cider_d)).toBeLessThan(1e-9 * ref.corpus.cider_d);
    ref.corpus.bleu_1_4.forEach((b, k) => expect(Math.abs([r.BLEU_1, r.BLEU_2, r.BLEU_3, r.BLEU_4][k] - b)).toBeLessThan(1e-9 * b));
    expect(Object.keys(r.perImage)).toHaveLength(50);
    expect(r.perImage['13'].CIDEr).toBeCloseTo(ref.images[13].cider_d, 12);
    expect(r.perImage['9'].BLEU_4).toBeCloseTo(ref.images[9].bleu_1_4[3], 15);
  });

  it('tokenizes raw captions first: case and punctuation do not change the scores', () => {
    const shout = (c: string) => (c.length ? `${c[0].toUpperCase()}${c.slice(1)}.` : c);
    const raw = evaluateCaptions(
      { annotations: refsCoco.annotations.map((a) => ({ ...a, caption: shout(a.caption) })) },
      candsCoco.map((c) => ({ ...c, caption: shout(c.caption) })),
    );
    const plain = evaluateCaptions(refsCoco, candsCoco);
    expect(raw).toEqual(plain);
    // the one candidate with a ',' token (image 11) loses it, so the corpus moves a little
    expect(Math.abs(plain.CIDEr - ref.corpus.cider_d)).toBeGreaterThan(1e-6);
  });

  it('scores only the images that have a candidate, as COCOEvalCap does, and says how many it skipped', () => {
    const skipped: number[][] = [];
    const r = evaluateCaptions(refsCoco, candsCoco.slice(0, 10), { tokenize: false, onUnscoredImages: (n, total) => skipped.push([n, total]) });
    expect(skipped).toEqual([[40, 50]]);
    expect(Object.keys(r.perImage)).toHaveLength(10);
    // idf now comes from 10 images, so even image 0's score moves
    expect(r.perImage['0'].CIDEr).not.toBeCloseTo(ref.images[0].cider_d, 3);
  });

  it.each<[string, unknown, unknown, RegExp]>([
    ['an empty candidate list', refsCoco, [], /^cands\.json is empty/],
    [
      'a candidate without references',
      refsCoco,
      [{ image_id: 4242, caption: 'x' }],
      /candidate for image_id 4242 \(cands\.json\[0\]\) has no references in refs\.json/,
    ],
    [
      'a duplicated candidate',
      refsCoco,
      [
        { image_id: 7, caption: 'a' },
        { image_id: 7, caption: 'b' },
      ],
      /image_id 7 appears twice in cands\.json \(entry 1\)/,
    ],
    ['a candidate without a caption', refsCoco, [{ image_id: 7, text: 'a' }], /cands\.json\[0\] \(image_id 7\) has no "caption" string/],
    ['a candidate without an image_id', refsCoco, [{ caption: 'a' }], /cands\.json\[0\] has no image_id/],
    ['candidates that are not a list', refsCoco, { annotations: [] }, /cands\.json must be COCO results/],
    ['references that are not COCO annotations', [{ image_id: 1, caption: 'a' }], candsCoco, /refs\.json must be COCO annotations/],
    ['a reference without a caption', { annotations: [{ image_id: 1 }] }, candsCoco, /refs\.json annotations\[0\] \(image_id 1\) has no "caption" string/],
  ])('rejects %s', (_what, refs, cands, message) => {
    expect(() => evaluateCaptions(refs, cands)).toThrow(message);
  });
});

describe('ciderD / bleu inputs', () => {
  const gts = { a: ['a dog runs on the grass', 'a dog is running'], b: ['two cats sleep', 'cats asleep on a bed'] };

  it('accept a Map or an object and keep the ids of gts', () => {
    const res = { a: ['a dog runs'], b: ['two cats'] };
    const fromObject = ciderD(gts, res);
    const fromMap = ciderD(new Map(Object.entries(gts)), new Map(Object.entries(res)));
    expect([...fromMap.perImage.keys()]).toEqual(['a', 'b']);
    expect(fromMap.score).toBe(fromObject.score);
    expect(bleu(gts, res).perImage.get('b')).toHaveLength(4);
  });

  it('an order with no candidate n-grams contributes 1e-6 (2-word exact match: BLEU-3 0.01, BLEU-4 0.001)', () => {
    const [b1, b2, b3, b4] = bleu({ x: ['black cat'] }, { x: ['black cat'] }).scores;
    expect(b1).toBeCloseTo(1, 8);
    expect(b2).toBeCloseTo(1, 8);
    expect(b3).toBeCloseTo(0.01, 10);
    expect(b4).toBeCloseTo(0.001, 10);
  });

  it.each<[string, object, object, RegExp]>([
    ['a missing candidate', gts, { a: ['x'] }, /image_id b has references but no candidate/],
    ['an extra candidate', gts, { a: ['x'], b: ['y'], c: ['z'] }, /candidate for image_id c has no references/],
    ['two candidates for one image', gts, { a: ['x', 'y'], b: ['y'] }, /candidate for image_id a must be a list of exactly one caption string/],
    ['an image without references', { ...gts, c: [] }, { a: ['x'], b: ['y'], c: ['z'] }, /references for image_id c must be a non-empty list/],
    ['no images at all', {}, {}, /no images to score/],
  ])('reject %s', (_what, g, r, message) => {
    expect(() => ciderD(g as never, r as never)).toThrow(message);
    expect(() => bleu(g as never, r as never)).toThrow(message);
  });

  it('reject bad options', () => {
    expect(() => ciderD(gts, { a: ['x'], b: ['y'] }, { sigma: 0 })).toThrow(/sigma must be a positive number/);
    expect(() => ciderD(gts, { a: ['x'], b: ['y'] }, { n: 0 })).toThrow(/n must be an integer from 1/);
  });
});
