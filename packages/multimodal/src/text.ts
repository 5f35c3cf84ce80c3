/**
 * Text for the multimodal model: a byte-level BPE (from @causalfusion/bpe) trained on the caption grammar,
 * shipped as assets/tokenizer.json, plus the fixed-length layout the model reads:
 *
 *   [<|bos|>, caption tokens..., <|eos|>, <|pad|>, ...]   (textLength ids)
 *
 * The pads stay in the sequence (attended like any token) so that text-to-image sees the same layout in
 * training and at inference; they get no loss. The "null caption" for classifier-free guidance is
 * [<|bos|>, <|eos|>, pads].
 */
import * as fs from 'fs';
import * as path from 'path';
import { BPETokenizer, fromTokenizerJson, trainBPE } from '@causalfusion/bpe';
import { BOS_ID, EOS_ID, PAD_ID } from '@causalfusion/config';
import { CAPTION_WORDS, CaptionedDataset } from './scenes';

export { BOS_ID, EOS_ID, PAD_ID };

export const PAD = '<|pad|>';
export const BOS = '<|bos|>';
export const EOS = '<|eos|>';
/** In id order: PAD_ID, BOS_ID, EOS_ID (@causalfusion/config). */
export const SPECIAL_TOKENS = [PAD, BOS, EOS] as const;

/** The shipped tokenizer (trained by {@link trainCaptionTokenizer}; a test checks it is reproducible). */
export const DEFAULT_TOKENIZER_FILE = path.resolve(__dirname, '..', 'assets', 'tokenizer.json');

/** Normalised caption text: lower case, single spaces, no punctuation the grammar does not use. */
export function normalizeCaption(text: string): string {
  return text
    .toLowerCase()
    .replace(/[^a-z0-9 ]+/g, ' ')
    .replace(/\s+/g, ' ')
    .trim();
}

/**
 * Train the caption BPE: the grammar's words, each as a caption of its own (so every word, rare or not,
 * becomes one token), plus the captions of the first 2,000 training scenes. Deterministic.
 */
export function trainCaptionTokenizer(): BPETokenizer {
  const ds = new CaptionedDataset({ split: 'train', count: 2000 });
  const texts: string[] = [];
  for (const w of CAPTION_WORDS) for (let k = 0; k < 4; k++) texts.push(`a ${w}`, w);
  for (let i = 0; i < ds.count; i++) texts.push(...ds.get(i).captions);
  return trainBPE(texts, { vocabSize: 400, minFrequency: 2, specialTokens: [...SPECIAL_TOKENS] });
}

/**
 * Caption text <-> the model's fixed-length id rows. `words` is the closed vocabulary a prompt may use
 * (the byte-level BPE could encode anything, but the model has only seen these words).
 */
export class CaptionCodec {
  constructor(
    readonly tokenizer: BPETokenizer,
    readonly textLength: number,
    readonly words: readonly string[] = CAPTION_WORDS,
  ) {
    if (tokenizer.tokenToId(PAD) !== PAD_ID || tokenizer.tokenToId(BOS) !== BOS_ID || tokenizer.tokenToId(EOS) !== EOS_ID) {
      throw new Error(`the caption tokenizer must have ${PAD}, ${BOS}, ${EOS} as ids 0, 1, 2`);
    }
  }

  get vocabSize(): number {
    return this.tokenizer.vocabSize;
  }

  /** Words of `text` that the model does not know (after normalisation). */
  unknownWords(text: string): string[] {
    const known = new Set(this.words);
    return normalizeCaption(text)
      .split(' ')
      .filter((w) => w && !known.has(w));
  }

  /** One row of `textLength` ids. Throws on unknown words or a caption that does not fit. */
  encode(text: string): Int32Array {
    const unknown = this.unknownWords(text);
    if (unknown.length) {
      throw new RangeError(`unknown word${unknown.length > 1 ? 's' : ''} ${unknown.map((w) => `"${w}"`).join(', ')}; the model knows: ${this.words.join(' ')}`);
    }
    const norm = normalizeCaption(text);
    if (!norm) throw new RangeError('the caption is empty; describe the digits, e.g. "a large 3 to the left of a small 8"');
    const ids = this.tokenizer.encodeOrdinary(norm);
    if (ids.length + 2 > this.textLength) {
      throw new RangeError(`the caption is ${ids.length} tokens long; this model reads at most ${this.textLength - 2} (plus <|bos|> and <|eos|>)`);
    }
    return this.layout(ids);
  }

  /** [bos, eos, pads]: the unconditional caption for classifier-free guidance. */
  nullCaption(): Int32Array {
    return this.layout([]);
  }

  private layout(ids: number[]): Int32Array {
    const row = new Int32Array(this.textLength).fill(PAD_ID);
    row[0] = BOS_ID;
    row.set(ids, 1);
    row[ids.length + 1] = EOS_ID;
    return row;
  }

  /** Text of a row (or of generated ids): up to the first <|eos|>, special tokens dropped. */
  decode(ids: ArrayLike<number>): string {
    const out: number[] = [];
    for (let i = 0; i < ids.length; i++) {
      if (ids[i] === EOS_ID) break;
      if (ids[i] > EOS_ID) out.push(ids[i]);
    }
    return this.tokenizer.decode(out).trim();
  }
}

/** Load a tokenizer.json (default: the shipped one). */
export function loadCaptionTokenizer(file: string = DEFAULT_TOKENIZER_FILE): BPETokenizer {
  if (!fs.existsSync(file)) throw new Error(`caption tokenizer ${file} does not exist`);
  return fromTokenizerJson(JSON.parse(fs.readFileSync(file, 'utf8')));
}
