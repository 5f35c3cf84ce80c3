import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import {
  CaptionCodec,
  CaptionedDataset,
  DEFAULT_TOKENIZER_FILE,
  loadCaptionTokenizer,
  readImageTextFolder,
  readSlots,
  checkFaithfulness,
  scoreScenes,
  captionClaims,
  trainCaptionTokenizer,
  writeImageTextFolder,
  CANVAS_HEIGHT,
  CANVAS_WIDTH,
  CAPTIONS_PER_SCENE,
} from './index';

jest.setTimeout(120_000);

const train = new CaptionedDataset({ split: 'train', count: 60000 });
const heldout = new CaptionedDataset({ split: 'heldout', count: 1000 });

describe('the captioned dataset', () => {
  it('is deterministic: the same (split, seed, index) gives the same item', () => {
    const again = new CaptionedDataset({ split: 'train', count: 60000 });
    for (const i of [0, 17, 59999]) expect(again.get(i)).toEqual(train.get(i));
    const other = new CaptionedDataset({ split: 'train', count: 60000, seed: 1 });
    expect(other.get(0)).not.toEqual(train.get(0));
  });

  it('the held-out split shares no image with the training split', () => {
    const key = (img: Uint8Array) => Buffer.from(img).toString('base64');
    const seen = new Set<string>();
    for (let i = 0; i < 3000; i++) seen.add(key(train.get(i).image));
    let shared = 0;
    for (let i = 0; i < heldout.count; i++) if (seen.has(key(heldout.get(i).image))) shared++;
    expect(shared).toBe(0);
    expect(() => heldout.get(1000)).toThrow(/outside the heldout split/);
  });

  it('captions name every digit and fit the text layout', () => {
    const codec = new CaptionCodec(loadCaptionTokenizer(), 18);
    for (let i = 0; i < 300; i++) {
      const item = heldout.get(i);
      expect(item.image.length).toBe(CANVAS_HEIGHT * CANVAS_WIDTH);
      expect(item.captions).toHaveLength(CAPTIONS_PER_SCENE);
      for (const c of item.captions) {
        expect(() => codec.encode(c)).not.toThrow();
        for (const g of item.scene.digits)
          expect(c).toMatch(new RegExp(`\\b(${g.digit}|${['zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine'][g.digit]})\\b`));
      }
    }
  });

  it('the shipped tokenizer.json is what trainCaptionTokenizer produces', () => {
    expect(trainCaptionTokenizer().toTokenizerJson()).toEqual(JSON.parse(fs.readFileSync(DEFAULT_TOKENIZER_FILE, 'utf8')));
  });

  it('the faithfulness reader reads the sizes, sides and top/bottom of rendered scenes', () => {
    let checked = 0;
    for (let i = 0; i < 300; i++) {
      const { scene, image } = heldout.get(i);
      const readings = readSlots(image);
      const labels = readings.map((r) => scene.digits.find((g) => g.side === r.side)?.digit ?? -1);
      const check = checkFaithfulness(readings, labels, { scene, saysVpos: true });
      if (check.placement && check.sizes && check.vpos) checked++;
    }
    // a few MNIST digits are faint or thin enough to be read as smaller; nearly all must pass
    expect(checked).toBeGreaterThanOrEqual(294);
    // an empty canvas fails every claim
    const empty = readSlots(new Uint8Array(CANVAS_HEIGHT * CANVAS_WIDTH));
    expect(checkFaithfulness(empty, [-1, -1], { scene: heldout.get(0).scene, saysVpos: false }).faithful).toBe(false);
  });

  it('scoreScenes reads each image against its own scene, with one classifier call', async () => {
    const items = [0, 1, 2, 3, 4, 5].map((i) => heldout.get(i));
    const scenes = items.map((it) => ({ scene: it.scene, caption: it.captions[0] }));
    // a classifier that answers what the scene in that slot holds: the reading alone decides the scores
    const truth = items.flatMap((it) => (['left', 'right'] as const).map((side) => it.scene.digits.find((g) => g.side === side)?.digit ?? 0));
    let calls = 0;
    const oracle = { classify: async (crops: Uint8Array) => (calls++, { labels: truth.slice(0, crops.length / 784) }) };
    const right = await scoreScenes(
      items.map((it) => it.image),
      scenes,
      oracle,
    );
    expect(calls).toBe(1);
    right.forEach((score, i) => {
      expect(score.named.map((g) => g.digit)).toEqual(items[i].scene.digits.map((g) => g.digit));
      expect(score.named.every((g) => g.right)).toBe(true);
      expect(score.digits).toBe(true);
    });
    // the same images against the next scene's captions: named digits in the wrong slots or of the wrong class
    const shifted = await scoreScenes(
      items.map((it) => it.image),
      [...scenes.slice(1), scenes[0]],
      oracle,
    );
    expect(shifted.filter((s) => s.faithful).length).toBeLessThan(items.length);
    await expect(scoreScenes([items[0].image], scenes, oracle)).rejects.toThrow(/1 images for 6 scenes/);
    expect(captionClaims(items[0].scene, 'a small 3 at the top left').saysVpos).toBe(true);
    expect(captionClaims(items[0].scene, 'a small 3 on the left').saysVpos).toBe(false);
  });

  it('the image-text folder round trip', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mm-folder-'));
    try {
      const items = [0, 1, 2].map((i) => heldout.get(i));
      await writeImageTextFolder(dir, items, CANVAS_HEIGHT, CANVAS_WIDTH);
      const back = await readImageTextFolder(dir, CANVAS_HEIGHT, CANVAS_WIDTH);
      expect(back.map((b) => b.captions)).toEqual(items.map((it) => it.captions));
      back.forEach((b, i) => expect(Buffer.from(b.image).equals(Buffer.from(items[i].image))).toBe(true));
      fs.appendFileSync(path.join(dir, 'captions.jsonl'), '{"file": "missing.png", "captions": ["a 3"]}\n');
      await expect(readImageTextFolder(dir, CANVAS_HEIGHT, CANVAS_WIDTH)).rejects.toThrow(/captions.jsonl:4: missing.png does not exist/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
