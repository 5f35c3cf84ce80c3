/**
 * The multimodal model's framework-free rules: its parameter table, config checks, masks and text loss.
 */
import {
  captionMask,
  imageLossWeights,
  multimodalParamEntries,
  textLossMask,
  textTargets,
  textToImageMask,
  validateMultimodalConfig,
  validateMultimodalShape,
  type MultimodalConfig,
} from './multimodal';
import { TINY_MULTIMODAL_CONFIG } from '../../../test-utils/multimodal';

const CONFIG: MultimodalConfig = TINY_MULTIMODAL_CONFIG;

describe('the parameter table', () => {
  it('starts the block with its bias-free qkv and ends with the LM head', () => {
    const keys = multimodalParamEntries(CONFIG).map((e) => e.key);
    expect(keys.slice(0, 3)).toEqual(['text_embed.weight', 'text_pos_embed', 'image_pos_embed']);
    expect(keys).not.toContain('blocks.0.attn.qkv.bias');
    expect(keys.slice(-4)).toEqual(['lm_head.0.weight', 'lm_head.0.bias', 'lm_head.1.weight', 'lm_head.1.bias']);
  });
});

describe('the rules', () => {
  it('a config without caption dropout is a valid shape; the config adds the dropout rule', () => {
    const { captionDropoutProb: _, ...shape } = CONFIG;
    expect(() => validateMultimodalShape(shape)).not.toThrow();
    expect(() => validateMultimodalShape({ ...shape, hiddenSize: 30, numHeads: 3 })).toThrow(/multiple of 4/);
    expect(() => validateMultimodalConfig({ ...CONFIG, captionDropoutProb: 1 })).toThrow(/captionDropoutProb/);
  });

  it('masks: causal text before the image (text-to-image), the image before causal text (captioning)', () => {
    const T = 3;
    const L = 2;
    // [text 3 | noised 2], one AR step: text causal and blind to the image; the noised tokens see everything
    expect(Array.from(textToImageMask(T, L, [2]))).toEqual([0, 1, 1, 1, 1, 0, 0, 1, 1, 1, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    // [image 2 | text 3]
    expect(Array.from(captionMask(L, T))).toEqual([0, 0, 1, 1, 1, 0, 0, 1, 1, 1, 0, 0, 0, 1, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0]);
  });

  it('text loss: caption tokens and the eos, not the pads nor a dropped row; targets shift left', () => {
    // [bos 7 8 eos pad] and [bos eos pad pad pad]
    const text = [1, 7, 8, 2, 0, 1, 2, 0, 0, 0];
    expect(Array.from(textLossMask(text, 5))).toEqual([1, 1, 1, 0, 0, 1, 0, 0, 0, 0]);
    expect(Array.from(textLossMask(text, 5, [1, 0]))).toEqual([0, 0, 0, 0, 0, 1, 0, 0, 0, 0]);
    expect(Array.from(textTargets(text, 5))).toEqual([7, 8, 2, 0, 0, 2, 0, 0, 0, 0]);
  });
});

describe('the image loss weights', () => {
  // 2 samples of L = 4 tokens of d = 2 values; sample 0: raster tokens 1 and 3 hold ink, sample 1: token 0 only
  const x = [-1, -1, 0.5, -1, -1, -1, -1, 0.2, /* sample 1 */ 0.9, 0.9, -1, -1, -1, -1, -1, -1];
  const ids = [3, 2, 1, 0, /* sample 1 */ 0, 1, 2, 3];
  const ar = [2, 2, 1, 1];

  it('foregroundWeight 0 is the AR weights of the official recipe for every sample', () => {
    expect(Array.from(imageLossWeights(ar, 0, x, ids, 2, 4, 2))).toEqual([2, 2, 1, 1, 2, 2, 1, 1]);
  });

  it('ink tokens (in shuffled order) weigh 1 + w against 1, with factors of mean 1', () => {
    // factors before renormalising: sample 0 (shuffled) [1+3, 1, 1+3, 1], sample 1 [1+3, 1, 1, 1]; mean 17 / 8
    const w = imageLossWeights([1, 1, 1, 1], 3, x, ids, 2, 4, 2);
    const expected = [4, 1, 4, 1, 4, 1, 1, 1].map((f) => f / (17 / 8));
    Array.from(w).forEach((v, i) => expect(v).toBeCloseTo(expected[i], 6));
    expect(Array.from(imageLossWeights(ar, 3, x, ids, 2, 4, 2))).toEqual(Array.from(w, (v, i) => Math.fround(v * ar[i % 4])));
    expect(() => imageLossWeights(ar, -1, x, ids, 2, 4, 2)).toThrow(/foregroundWeight/);
  });
});
