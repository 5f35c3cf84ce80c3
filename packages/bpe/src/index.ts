/**
 * @causalfusion/bpe: byte-level BPE text tokenizer, GPT-2 exact, trainable, tokenizer.json interop.
 *
 * ```ts
 * const gpt2 = loadGPT2('encoder.json', 'vocab.bpe');
 * gpt2.encode('Hello world'); // [15496, 995]
 * const tok = trainBPE(texts, { vocabSize: 8000, specialTokens: ['<|pad|>', '<|bos|>', '<|eos|>'] });
 * tok.encode('<|bos|>a cat', { allowedSpecial: 'all' });
 * tok.save('tokenizer.json'); // loads in Hugging Face tokenizers, and back with loadTokenizerJson
 * ```
 */
export { BPETokenizer } from './tokenizer';
export type { BPEModelSpec, BatchEncoding, BatchOptions, EncodeOptions, SpecialSet } from './tokenizer';
export { createGPT2Tokenizer, fromTokenizerJson, loadGPT2, loadTokenizerJson, parseMerges } from './load';
export type { GPT2LoadOptions } from './load';
export { trainBPE, trainBPEFromFiles } from './train';
export type { TrainOptions } from './train';
export { PY_WHITESPACE, pretokenize } from './pretokenize';
export { BYTE_TO_CHAR, bytesToTokenString, toWellFormed } from './bytes';
