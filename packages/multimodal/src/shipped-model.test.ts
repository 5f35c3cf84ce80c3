/**
 * The multimodal model shipped in assets/multimodal-model: present, small, described by its meta.json and
 * README, and good enough at captioning that its greedy captions of held-out scenes name their digits.
 * (Text-to-image quality is measured by `pnpm bench:multimodal`, not asserted here.)
 */
import * as fs from 'fs';
import * as path from 'path';
import {
  CanvasCodec,
  CaptionedDataset,
  DEFAULT_MULTIMODAL_MODEL_DIR,
  DIGIT_WORDS,
  generateCaptions,
  initBackend,
  loadMultimodalModel,
  readMultimodalFolder,
} from './index';

jest.setTimeout(120_000);

describe('the shipped multimodal model', () => {
  it('is a model folder under 20 MB that says how it was trained', () => {
    const { meta } = readMultimodalFolder(DEFAULT_MULTIMODAL_MODEL_DIR);
    expect(meta.dataset).toBe('mnist-compositions');
    expect(Number(meta.training?.steps)).toBeGreaterThan(0);
    const bytes = fs.readdirSync(DEFAULT_MULTIMODAL_MODEL_DIR).reduce((n, f) => n + fs.statSync(path.join(DEFAULT_MULTIMODAL_MODEL_DIR, f)).size, 0);
    expect(bytes).toBeLessThan(20e6);
    expect(fs.existsSync(path.join(DEFAULT_MULTIMODAL_MODEL_DIR, 'README.md'))).toBe(true);
  });

  it('its greedy captions of held-out scenes name the digits in them', async () => {
    await initBackend({ backend: 'wasm', quiet: true });
    const { model, codec } = loadMultimodalModel(DEFAULT_MULTIMODAL_MODEL_DIR);
    try {
      const items = Array.from({ length: 40 }, (_, i) => new CaptionedDataset({ split: 'heldout', count: 40 }).get(i));
      const canvas = new CanvasCodec(model.config.imageHeight, model.config.imageWidth, model.config.patchSize);
      const images = new Uint8Array(items.length * items[0].image.length);
      items.forEach((it, i) => images.set(it.image, i * it.image.length));
      const { texts } = generateCaptions(model, codec, canvas.encode(images), items.length, { greedy: true });
      const names = (caption: string, digit: number) => new RegExp(`\\b(${digit}|${DIGIT_WORDS[digit]})\\b`).test(caption);
      const right = items.filter((it, i) => it.scene.digits.every((g) => names(texts[i], g.digit))).length;
      // a model that has not learned to read digits names them by chance (~1 in 10 per digit)
      expect(right / items.length).toBeGreaterThan(0.7);
    } finally {
      model.dispose();
    }
  });
});
