/**
 * The byte-level BPE tokenizer: special tokens, pre-tokenization, merges, decode, batches, and
 * export to a Hugging Face `tokenizer.json`.
 */
import * as fs from 'fs';
import { BYTE_TO_CHAR, tokenStringToBytes, utf8Encode } from './bytes';
import { ID_LIMIT, MergeTable, mergeSymbols } from './merge';
import { scanPretokens } from './pretokenize';

/** What a tokenizer is made of; every loader and the trainer end up here. */
export interface BPEModelSpec {
  /** Byte-level token string ("Ġworld") -> id. Must contain all 256 single-byte characters. */
  vocab: ReadonlyMap<string, number>;
  /** Merges in rank order, each as its two byte-level halves. */
  merges: ReadonlyArray<readonly [string, string]>;
  /** Special token text -> id. Ids may coincide with a vocab entry (GPT-2's `<|endoftext|>`). */
  specialTokens?: ReadonlyMap<string, number>;
  /** Hugging Face ByteLevel `add_prefix_space`: put a space before text that does not start with one. */
  addPrefixSpace?: boolean;
  /** Hugging Face BPE `ignore_merges`: a pre-token that is itself in the vocab becomes one token. */
  ignoreMerges?: boolean;
}

/** Which special tokens `encode` may see in the text; names are checked against the tokenizer. */
export type SpecialSet = 'all' | 'none' | Iterable<string>;

export interface EncodeOptions {
  /**
   * Special tokens that become their own id when their text appears (never split by BPE).
   * Default 'none': the text is encoded as ordinary text, as GPT-2's encoder.py does.
   */
  allowedSpecial?: SpecialSet;
  /**
   * Special tokens whose text must NOT appear (an Error is thrown), tiktoken's safety check against
   * user text that forges control tokens. 'all' means every special token not in `allowedSpecial`.
   * Default 'none'.
   */
  disallowedSpecial?: SpecialSet;
}

export interface BatchOptions extends EncodeOptions {
  /** Longest sequence to return; longer ones are cut (see `truncation`). */
  maxLength?: number;
  /** Cut sequences longer than `maxLength` (default true when `maxLength` is given). */
  truncation?: boolean;
  /** Which end loses tokens when cutting (default 'right'). */
  truncationSide?: 'left' | 'right';
  /** 'longest' (default) pads to the longest sequence, 'max_length' to `maxLength`, 'none' does not pad. */
  padding?: 'longest' | 'max_length' | 'none';
  /** Which end receives padding (default 'right'). */
  padSide?: 'left' | 'right';
  /** Padding id; defaults to the special token `<|pad|>` when the tokenizer has one. */
  padId?: number;
}

export interface BatchEncoding {
  /** One row per text, padded as asked. */
  ids: number[][];
  /** 1 for a real token, 0 for padding; same shape as `ids`. */
  attentionMask: number[][];
}

/** Entries of the token cache before it is cleared (bounds memory on endless streams of new words). */
const CACHE_LIMIT = 100_000;

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

export class BPETokenizer {
  /** Byte-level token string -> id (the model vocabulary, without special tokens that are not in it). */
  readonly vocab: ReadonlyMap<string, number>;
  /** Special token text -> id. */
  readonly specialTokens: ReadonlyMap<string, number>;
  /** Merges in rank order. */
  readonly merges: ReadonlyArray<readonly [string, string]>;
  readonly addPrefixSpace: boolean;
  readonly ignoreMerges: boolean;

  private readonly mergeTable: MergeTable;
  private readonly byteIds = new Int32Array(256);
  /** id -> bytes it decodes to; undefined for ids that do not exist. */
  private readonly idBytes: (Uint8Array | undefined)[] = [];
  private readonly idToString: (string | undefined)[] = [];
  private readonly specialIds = new Set<number>();
  private readonly cache = new Map<string, number[]>();
  private readonly splitters = new Map<string, RegExp>();
  private scratch = new Uint8Array(1024);
  private syms = new Int32Array(1024);

  constructor(spec: BPEModelSpec) {
    this.vocab = spec.vocab;
    this.merges = spec.merges;
    this.specialTokens = spec.specialTokens ?? new Map();
    this.addPrefixSpace = spec.addPrefixSpace ?? false;
    this.ignoreMerges = spec.ignoreMerges ?? false;

    const encoder = new TextEncoder();
    for (const [token, id] of this.vocab) {
      if (!Number.isInteger(id) || id < 0 || id >= ID_LIMIT) {
        throw new Error(`vocab entry ${JSON.stringify(token)} has id ${id}; ids must be integers in [0, ${ID_LIMIT})`);
      }
      // Two tokens with one id would decode one as the other: text would silently change.
      const previous = this.idToString[id];
      if (previous !== undefined) {
        throw new Error(`vocab entries ${JSON.stringify(previous)} and ${JSON.stringify(token)} both have id ${id}; every token needs its own id`);
      }
      // Entries outside the byte alphabet (added tokens stored in the vocab) decode as their own text.
      this.idBytes[id] = tokenStringToBytes(token) ?? encoder.encode(token);
      this.idToString[id] = token;
    }
    for (const [text, id] of this.specialTokens) {
      if (!Number.isInteger(id) || id < 0 || id >= ID_LIMIT) {
        throw new Error(`special token ${JSON.stringify(text)} has id ${id}; ids must be integers in [0, ${ID_LIMIT})`);
      }
      if (text.length === 0) throw new Error('a special token cannot be the empty string');
      const other = this.idToString[id];
      if (other !== undefined && other !== text) {
        throw new Error(`special token ${JSON.stringify(text)} has id ${id}, which is already ${JSON.stringify(other)}; pick an unused id`);
      }
      this.idBytes[id] = encoder.encode(text);
      this.idToString[id] = text;
      this.specialIds.add(id);
    }

    for (let b = 0; b < 256; b++) {
      const id = this.vocab.get(BYTE_TO_CHAR[b]);
      if (id === undefined) {
        throw new Error(
          `the vocab has no token for byte 0x${b.toString(16).padStart(2, '0')} (${JSON.stringify(BYTE_TO_CHAR[b])}); ` +
            'a byte-level BPE vocab needs all 256 single-byte tokens',
        );
      }
      this.byteIds[b] = id;
    }

    const triples = this.merges.map(([a, b], rank): [number, number, number] => {
      const ia = this.vocab.get(a);
      const ib = this.vocab.get(b);
      const im = this.vocab.get(a + b);
      if (ia === undefined || ib === undefined || im === undefined) {
        const missing = ia === undefined ? a : ib === undefined ? b : a + b;
        throw new Error(
          `merge #${rank} (${JSON.stringify(a)} ${JSON.stringify(b)}) uses ${JSON.stringify(missing)}, which is not in the vocab; ` +
            'the merges and vocab files do not belong together',
        );
      }
      return [ia, ib, im];
    });
    this.mergeTable = new MergeTable(triples);
  }

  /** Largest id + 1 (special tokens included). */
  get vocabSize(): number {
    return this.idBytes.length;
  }

  /** The vocab string (or special token text) of an id; undefined when the id does not exist. */
  idToToken(id: number): string | undefined {
    return this.idToString[id];
  }

  /** The id of a special token's text, else of a byte-level vocab string; undefined if neither. */
  tokenToId(token: string): number | undefined {
    return this.specialTokens.get(token) ?? this.vocab.get(token);
  }

  /** True for the ids of special tokens. */
  isSpecialId(id: number): boolean {
    return this.specialIds.has(id);
  }

  /** Text -> token ids. Special tokens count only when allowed (see {@link EncodeOptions}). */
  encode(text: string, options: EncodeOptions = {}): number[] {
    if (typeof text !== 'string') throw new Error(`encode expects a string, got ${typeof text}`);
    const allowed = this.resolveSpecial(options.allowedSpecial ?? 'none', 'allowedSpecial');
    const disallowedOpt = options.disallowedSpecial ?? 'none';
    const disallowed =
      disallowedOpt === 'all' ? [...this.specialTokens.keys()].filter((t) => !allowed.includes(t)) : this.resolveSpecial(disallowedOpt, 'disallowedSpecial');
    if (disallowed.length > 0) {
      const hit = this.splitter(disallowed).exec(text);
      if (hit) {
        throw new Error(
          `the text contains the special token ${JSON.stringify(hit[0])} at index ${hit.index}; ` +
            `pass allowedSpecial: [${JSON.stringify(hit[0])}] to encode it as one token, or drop it from disallowedSpecial to encode it as plain text`,
        );
      }
    }

    const out: number[] = [];
    if (allowed.length === 0) {
      this.encodeSegment(text, 0, text.length, out);
      return out;
    }
    const re = this.splitter(allowed);
    re.lastIndex = 0;
    let from = 0;
    for (let m = re.exec(text); m !== null; m = re.exec(text)) {
      this.encodeSegment(text, from, m.index, out);
      out.push(this.specialTokens.get(m[0])!);
      from = m.index + m[0].length;
    }
    this.encodeSegment(text, from, text.length, out);
    return out;
  }

  /** Text -> ids with every special token's text treated as plain text (encoder.py's behaviour). */
  encodeOrdinary(text: string): number[] {
    return this.encode(text);
  }

  /** Ids -> the bytes they stand for (special tokens give their text's UTF-8). */
  decodeBytes(ids: ArrayLike<number>, options: { skipSpecialTokens?: boolean } = {}): Uint8Array {
    let total = 0;
    for (let i = 0; i < ids.length; i++) total += this.bytesOf(ids[i]).length;
    const out = new Uint8Array(total);
    let n = 0;
    for (let i = 0; i < ids.length; i++) {
      if (options.skipSpecialTokens && this.specialIds.has(ids[i])) continue;
      const b = this.bytesOf(ids[i]);
      out.set(b, n);
      n += b.length;
    }
    return out.subarray(0, n);
  }

  /**
   * Ids -> text. Byte sequences that are not valid UTF-8 (a token sequence cut inside a character)
   * become U+FFFD, like encoder.py's `errors="replace"`. A leading U+FEFF is text like any other
   * (TextDecoder's default would drop it as a byte order mark; Python's decode keeps it).
   */
  decode(ids: ArrayLike<number>, options: { skipSpecialTokens?: boolean } = {}): string {
    return new TextDecoder('utf-8', { ignoreBOM: true }).decode(this.decodeBytes(ids, options));
  }

  /** Encodes several texts, then truncates and pads them into rows of equal length. */
  encodeBatch(texts: readonly string[], options: BatchOptions = {}): BatchEncoding {
    const { maxLength, padding = 'longest', padSide = 'right', truncationSide = 'right' } = options;
    if (!Array.isArray(texts)) throw new Error('encodeBatch expects an array of strings');
    if (maxLength !== undefined && (!Number.isInteger(maxLength) || maxLength < 1)) {
      throw new Error(`maxLength must be a positive integer, got ${maxLength}`);
    }
    if (padding === 'max_length' && maxLength === undefined) {
      throw new Error("padding 'max_length' needs maxLength; pass maxLength or use padding 'longest'");
    }
    if (!['longest', 'max_length', 'none'].includes(padding)) {
      throw new Error(`padding must be 'longest', 'max_length' or 'none', got ${JSON.stringify(padding)}`);
    }
    const truncation = options.truncation ?? maxLength !== undefined;
    if (truncation && maxLength === undefined) throw new Error('truncation needs maxLength; pass maxLength');

    const rows = texts.map((t) => {
      const ids = this.encode(t, options);
      if (truncation && ids.length > maxLength!) {
        return truncationSide === 'left' ? ids.slice(ids.length - maxLength!) : ids.slice(0, maxLength);
      }
      return ids;
    });
    const width = padding === 'max_length' ? maxLength! : padding === 'longest' ? Math.max(0, ...rows.map((r) => r.length)) : 0;
    const needsPad = padding !== 'none' && rows.some((r) => r.length < width);
    const padId = options.padId ?? this.specialTokens.get('<|pad|>');
    if (needsPad && padId === undefined) {
      throw new Error("padding needs a pad id: pass padId, or train/load the tokenizer with a '<|pad|>' special token");
    }
    const ids: number[][] = [];
    const attentionMask: number[][] = [];
    for (const row of rows) {
      const fill = padding === 'none' ? 0 : Math.max(0, width - row.length);
      const pad = new Array<number>(fill).fill(padId ?? 0);
      const zeros = new Array<number>(fill).fill(0);
      const ones = new Array<number>(row.length).fill(1);
      ids.push(padSide === 'left' ? [...pad, ...row] : [...row, ...pad]);
      attentionMask.push(padSide === 'left' ? [...zeros, ...ones] : [...ones, ...zeros]);
    }
    return { ids, attentionMask };
  }

  /**
   * This tokenizer as a Hugging Face `tokenizer.json` object (BPE model, ByteLevel pre-tokenizer,
   * post-processor and decoder), which `tokenizers` and `@huggingface/tokenizers` load.
   */
  toTokenizerJson(): Record<string, unknown> {
    const vocab: Record<string, number> = {};
    const entries = [...this.vocab].sort((x, y) => x[1] - y[1]);
    for (const [token, id] of entries) vocab[token] = id;
    // Hugging Face keeps added tokens in the model vocab too.
    for (const [text, id] of this.specialTokens) if (!(text in vocab)) vocab[text] = id;
    const added = [...this.specialTokens]
      .sort((x, y) => x[1] - y[1])
      .map(([content, id]) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }));
    const byteLevel = { type: 'ByteLevel', add_prefix_space: this.addPrefixSpace, trim_offsets: true, use_regex: true };
    return {
      version: '1.0',
      truncation: null,
      padding: null,
      added_tokens: added,
      normalizer: null,
      pre_tokenizer: byteLevel,
      post_processor: { ...byteLevel, trim_offsets: false },
      decoder: byteLevel,
      model: {
        type: 'BPE',
        dropout: null,
        unk_token: null,
        continuing_subword_prefix: null,
        end_of_word_suffix: null,
        fuse_unk: false,
        byte_fallback: false,
        ignore_merges: this.ignoreMerges,
        vocab,
        // "left right" strings: byte-level tokens never contain a plain space (it is written "Ġ").
        merges: this.merges.map(([a, b]) => `${a} ${b}`),
      },
    };
  }

  /**
   * Writes {@link toTokenizerJson} to `path`, atomically: a temporary file beside it, then renamed over
   * it, so a reader or a crash never sees half a tokenizer.json. (This package has no dependencies, so
   * it does not use @causalfusion/safetensors' writeFileAtomic; the folder must exist.)
   */
  save(path: string): void {
    const tmp = `${path}.tmp-${process.pid}-${Math.random().toString(16).slice(2, 10)}`;
    try {
      fs.writeFileSync(tmp, JSON.stringify(this.toTokenizerJson()), { flag: 'wx' });
      fs.renameSync(tmp, path);
    } catch (e) {
      fs.rmSync(tmp, { force: true });
      throw e;
    }
  }

  private bytesOf(id: number): Uint8Array {
    const b = Number.isInteger(id) ? this.idBytes[id] : undefined;
    if (b === undefined) throw new Error(`token id ${id} is not in this tokenizer (ids are 0..${this.vocabSize - 1})`);
    return b;
  }

  private resolveSpecial(set: SpecialSet, name: string): string[] {
    if (set === 'all') return [...this.specialTokens.keys()];
    if (set === 'none') return [];
    if (typeof set === 'string') throw new Error(`${name} must be 'all', 'none' or a list of special tokens, got ${JSON.stringify(set)}`);
    const out = [...set];
    for (const t of out) {
      if (!this.specialTokens.has(t)) {
        throw new Error(`${name}: ${JSON.stringify(t)} is not a special token of this tokenizer (it has ${JSON.stringify([...this.specialTokens.keys()])})`);
      }
    }
    return out;
  }

  /** A global RegExp matching any of `tokens`, longest first so "<|a|>" never hides "<|a|>x". */
  private splitter(tokens: string[]): RegExp {
    const sorted = [...new Set(tokens)].sort((a, b) => b.length - a.length || (a < b ? -1 : 1));
    const key = sorted.join('\u0000');
    let re = this.splitters.get(key);
    if (!re) {
      re = new RegExp(sorted.map(escapeRegExp).join('|'), 'gu');
      this.splitters.set(key, re);
    }
    re.lastIndex = 0;
    return re;
  }

  /** Encodes `text[start, end)`, which contains no special token, appending ids to `out`. */
  private encodeSegment(text: string, start: number, end: number, out: number[]): void {
    if (start >= end) return;
    if (this.addPrefixSpace && text.charCodeAt(start) !== 0x20) {
      text = ' ' + text.slice(start, end);
      start = 0;
      end = text.length;
    }
    scanPretokens(text, start, end, (s, e) => this.encodePiece(text, s, e, out));
  }

  /** One pre-token -> ids (cached: English text repeats the same words over and over). */
  private encodePiece(text: string, s: number, e: number, out: number[]): void {
    const piece = text.slice(s, e);
    const cached = this.cache.get(piece);
    if (cached !== undefined) {
      for (let k = 0; k < cached.length; k++) out.push(cached[k]);
      return;
    }
    if (this.scratch.length < 3 * (e - s)) {
      this.scratch = new Uint8Array(6 * (e - s));
      this.syms = new Int32Array(6 * (e - s));
    }
    const n = utf8Encode(text, s, e, this.scratch);
    let ids: number[];
    const whole = this.ignoreMerges ? this.vocab.get(byteString(this.scratch, n)) : undefined;
    if (whole !== undefined) {
      ids = [whole];
    } else {
      const syms = this.syms;
      for (let k = 0; k < n; k++) syms[k] = this.byteIds[this.scratch[k]];
      const m = mergeSymbols(syms, n, this.mergeTable);
      ids = Array.from(syms.subarray(0, m));
    }
    if (this.cache.size >= CACHE_LIMIT) this.cache.clear();
    this.cache.set(piece, ids);
    for (let k = 0; k < ids.length; k++) out.push(ids[k]);
  }
}

function byteString(bytes: Uint8Array, n: number): string {
  let s = '';
  for (let k = 0; k < n; k++) s += BYTE_TO_CHAR[bytes[k]];
  return s;
}
