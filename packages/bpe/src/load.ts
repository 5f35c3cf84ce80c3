/**
 * Loaders: GPT-2's `encoder.json` + `vocab.bpe`, and Hugging Face `tokenizer.json`.
 */
import * as fs from 'fs';
import { BPETokenizer } from './tokenizer';

export interface GPT2LoadOptions {
  /**
   * Extra special tokens (e.g. `<|bos|>`, `<|pad|>`, image markers), given ids after the vocabulary in
   * this order. A name the vocab already has as a whole entry (`<|endoftext|>`) keeps that id.
   */
  extraSpecialTokens?: readonly string[];
}

function readText(path: string, what: string): string {
  try {
    return fs.readFileSync(path, 'utf8');
  } catch (err) {
    throw new Error(`cannot read ${what} ${JSON.stringify(path)}: ${(err as Error).message}`);
  }
}

function parseJson(text: string, path: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    // one line: V8's message quotes the text around the error, newlines included
    throw new Error(`${JSON.stringify(path)} is not valid JSON (${(err as Error).message.replace(/\s+/g, ' ')})`);
  }
}

/** Parses vocab.bpe text: an optional "#version" line, then one "left right" merge per line. */
export function parseMerges(text: string): [string, string][] {
  const merges: [string, string][] = [];
  const lines = text.split('\n');
  lines.forEach((raw, i) => {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (line === '' || (i === 0 && line.startsWith('#version'))) return;
    const parts = line.split(' ');
    if (parts.length !== 2 || parts[0] === '' || parts[1] === '') {
      throw new Error(`merges line ${i + 1} is ${JSON.stringify(line)}; expected two tokens separated by one space`);
    }
    merges.push([parts[0], parts[1]]);
  });
  return merges;
}

/**
 * GPT-2 tokenizer from the parsed `encoder.json` object and the `vocab.bpe` text. `<|endoftext|>`
 * (id 50256) is registered as a special token but, like in encoder.py, only becomes one id when
 * `allowedSpecial` includes it.
 */
export function createGPT2Tokenizer(encoder: Record<string, number>, vocabBpe: string, options: GPT2LoadOptions = {}): BPETokenizer {
  if (encoder === null || typeof encoder !== 'object' || Array.isArray(encoder)) {
    throw new Error('encoder.json must hold an object mapping token strings to ids');
  }
  const vocab = new Map<string, number>(Object.entries(encoder));
  const specialTokens = new Map<string, number>();
  if (vocab.has('<|endoftext|>')) specialTokens.set('<|endoftext|>', vocab.get('<|endoftext|>')!);
  // a loop, not Math.max(...values): spreading a vocab of a few 100k entries overflows the stack
  let nextId = 0;
  for (const id of vocab.values()) if (id >= nextId) nextId = id + 1;
  for (const t of options.extraSpecialTokens ?? []) {
    if (!specialTokens.has(t)) specialTokens.set(t, vocab.get(t) ?? nextId++);
  }
  return new BPETokenizer({ vocab, merges: parseMerges(vocabBpe), specialTokens });
}

/** GPT-2 tokenizer from the paths of `encoder.json` and `vocab.bpe`. */
export function loadGPT2(encoderJsonPath: string, vocabBpePath: string, options: GPT2LoadOptions = {}): BPETokenizer {
  const encoder = parseJson(readText(encoderJsonPath, 'encoder.json'), encoderJsonPath) as Record<string, number>;
  const merges = readText(vocabBpePath, 'vocab.bpe');
  try {
    return createGPT2Tokenizer(encoder, merges, options);
  } catch (err) {
    throw new Error(`cannot load the GPT-2 tokenizer ${JSON.stringify(encoderJsonPath)} + ${JSON.stringify(vocabBpePath)}: ${(err as Error).message}`);
  }
}

type Json = Record<string, unknown>;

function isObject(x: unknown): x is Json {
  return x !== null && typeof x === 'object' && !Array.isArray(x);
}

/** Throws unless `component` is null or of one of the accepted types. */
function expectType(component: unknown, field: string, accepted: string[]): Json | null {
  if (component === null || component === undefined) return null;
  if (!isObject(component) || !accepted.includes(component.type as string)) {
    const got = isObject(component) ? component.type : component;
    throw new Error(`tokenizer.json ${field} is ${JSON.stringify(got)}; this package supports ${accepted.join(' or ')} (byte-level BPE as GPT-2)`);
  }
  return component;
}

/**
 * Tokenizer from a parsed Hugging Face `tokenizer.json`: a BPE model with the ByteLevel pre-tokenizer
 * (GPT-2's pattern) and ByteLevel decoder, which covers GPT-2, RoBERTa, GPT-J/NeoX-style files and
 * what {@link BPETokenizer.save} writes. Other pipelines (normalizers, Split/Metaspace
 * pre-tokenizers, WordPiece, byte fallback, dropout) throw rather than encode differently.
 * Every entry of `added_tokens` becomes a special token (allowed through `allowedSpecial`).
 */
export function fromTokenizerJson(json: unknown): BPETokenizer {
  if (!isObject(json) || !isObject(json.model)) throw new Error('tokenizer.json must be an object with a "model" object');
  const model = json.model;
  if (model.type !== undefined && model.type !== 'BPE') {
    throw new Error(`tokenizer.json model.type is ${JSON.stringify(model.type)}; only "BPE" is supported`);
  }
  if (json.normalizer !== null && json.normalizer !== undefined) {
    throw new Error(`tokenizer.json has a normalizer (${JSON.stringify((json.normalizer as Json).type)}); only tokenizers without one are supported`);
  }
  const pre = expectType(json.pre_tokenizer, 'pre_tokenizer', ['ByteLevel']);
  if (pre === null) throw new Error('tokenizer.json has no pre_tokenizer; a ByteLevel pre_tokenizer is required');
  if (pre.use_regex === false) throw new Error("tokenizer.json ByteLevel pre_tokenizer has use_regex false; only GPT-2's regex split is supported");
  expectType(json.decoder, 'decoder', ['ByteLevel']);
  // A ByteLevel post-processor only adjusts offsets; anything that inserts tokens would change ids.
  expectType(json.post_processor, 'post_processor', ['ByteLevel']);
  if (model.dropout !== null && model.dropout !== undefined && model.dropout !== 0) {
    throw new Error(`tokenizer.json model.dropout is ${model.dropout}; BPE dropout is random, set it to null`);
  }
  if (model.byte_fallback === true) throw new Error('tokenizer.json model.byte_fallback is true; byte-level BPE never needs it, set it to false');
  for (const field of ['continuing_subword_prefix', 'end_of_word_suffix'] as const) {
    if (model[field] !== null && model[field] !== undefined && model[field] !== '') {
      throw new Error(`tokenizer.json model.${field} is ${JSON.stringify(model[field])}; byte-level BPE uses none`);
    }
  }
  if (!isObject(model.vocab)) throw new Error('tokenizer.json model.vocab must be an object of token -> id');
  if (!Array.isArray(model.merges)) throw new Error('tokenizer.json model.merges must be an array');

  const vocab = new Map<string, number>(Object.entries(model.vocab as Record<string, number>));
  // Two spellings: "left right" strings (older files) or ["left", "right"] pairs (tokenizers >= 0.20).
  const merges = (model.merges as unknown[]).map((m, i): [string, string] => {
    if (Array.isArray(m) && m.length === 2 && typeof m[0] === 'string' && typeof m[1] === 'string') return [m[0], m[1]];
    if (typeof m === 'string') {
      const parts = m.split(' ');
      if (parts.length === 2) return [parts[0], parts[1]];
    }
    throw new Error(`tokenizer.json model.merges[${i}] is ${JSON.stringify(m)}; expected "left right" or ["left", "right"]`);
  });

  if (json.added_tokens != null && !Array.isArray(json.added_tokens)) throw new Error('tokenizer.json added_tokens must be a list');
  const specialTokens = new Map<string, number>();
  for (const [i, t] of ((json.added_tokens as unknown[]) ?? []).entries()) {
    if (!isObject(t) || typeof t.content !== 'string' || typeof t.id !== 'number') {
      throw new Error(`tokenizer.json added_tokens[${i}] must have a string "content" and a numeric "id"`);
    }
    if (t.lstrip === true || t.rstrip === true || t.single_word === true) {
      throw new Error(`tokenizer.json added token ${JSON.stringify(t.content)} uses lstrip/rstrip/single_word, which this package does not support`);
    }
    specialTokens.set(t.content, t.id);
  }
  return new BPETokenizer({
    vocab,
    merges,
    specialTokens,
    addPrefixSpace: pre.add_prefix_space === true,
    ignoreMerges: model.ignore_merges === true,
  });
}

/** Tokenizer from the path of a Hugging Face `tokenizer.json` (see {@link fromTokenizerJson}). */
export function loadTokenizerJson(path: string): BPETokenizer {
  const json = parseJson(readText(path, 'tokenizer.json'), path);
  try {
    return fromTokenizerJson(json);
  } catch (err) {
    throw new Error(`cannot load ${JSON.stringify(path)}: ${(err as Error).message}`);
  }
}
