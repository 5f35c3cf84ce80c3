/**
 * The multimodal model's framework-free rules: its parameter table, config checks, masks and text loss.
 */
import {
  captionMask,
  multimodalParamEntries,
  textLossMask,
  textTargets,
  textToImageMask,
  validateMultimodalConfig,
  validateMultimodalShape,
  type MultimodalConfig,
} from './multimodal';

const CONFIG: MultimodalConfig = {
  imageHeight: 8,
  imageWidth: 12,
  channels: 1,
  patchSize: 2,
  textLength: 8,
  vocabSize: 24,
  hiddenSize: 32,
  depth: 2,
  numHeads: 2,
  mlpRatio: 2,
  captionDropoutProb: 0.1,
};

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
