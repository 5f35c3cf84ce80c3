/**
 * The captioned dataset: MNIST digits composed on a 16 x 32 canvas, with captions from a small templated
 * grammar. Everything is a pure function of (split, seed, index), so the dataset ships as code: nothing is
 * downloaded or stored.
 *
 * The canvas has two 16 x 16 slots, left and right. A scene holds one or two digits; each is `large`
 * (the whole slot, MNIST 28 -> 16) or `small` (10 x 10, at the top or the bottom of its slot). Captions
 * name every digit (as a word or a numeral), its size and its side; some also say top / bottom.
 * The `train` split draws its digits from MNIST's training images, `heldout` from MNIST's test images,
 * with another seed stream, so no image and no scene is shared.
 */
import { loadMnist, resizeImages } from '@causalfusion/data';
import { createRng, type Rng } from '@causalfusion/rng';

export const CANVAS_HEIGHT = 16;
export const CANVAS_WIDTH = 32;
/** Side of a slot and of a large digit. */
export const SLOT = 16;
export const SMALL = 10;
/** Rows where a small digit starts: top or bottom of the slot. */
const SMALL_Y = { top: 0, bottom: SLOT - SMALL } as const;
/** Column offset of a small digit inside its slot (centred). */
const SMALL_X = (SLOT - SMALL) / 2;

export type SceneSplit = 'train' | 'heldout';
export type Side = 'left' | 'right';
export type DigitSize = 'large' | 'small';
export type VerticalPos = 'top' | 'bottom';

export interface SceneDigit {
  digit: number;
  size: DigitSize;
  side: Side;
  /** Only small digits have one. */
  vpos: VerticalPos | null;
  /** Index of the MNIST image drawn (in the split's MNIST source). */
  source: number;
}

export interface Scene {
  /** One or two digits; with two, the first is on the left. */
  digits: SceneDigit[];
}

export interface CaptionedItem {
  index: number;
  scene: Scene;
  /** CANVAS_HEIGHT x CANVAS_WIDTH gray levels, row-major, 0 = background. */
  image: Uint8Array;
  /** Several captions of the same scene (the references for CIDEr-D; training draws one). */
  captions: string[];
}

export const DIGIT_WORDS = ['zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine'] as const;

/** Every word the caption grammar can produce (the prompt vocabulary of the shipped model). */
export const CAPTION_WORDS: readonly string[] = [
  ...DIGIT_WORDS,
  ...DIGIT_WORDS.map((_, d) => String(d)),
  'a',
  'an',
  'and',
  'at',
  'the',
  'of',
  'to',
  'on',
  'in',
  'is',
  'next',
  'side',
  'digit',
  'digits',
  'two',
  'large',
  'big',
  'small',
  'tiny',
  'left',
  'right',
  'top',
  'bottom',
  'corner',
  'with',
  'only',
  'single',
  'by',
].filter((w, i, all) => all.indexOf(w) === i);

/** Captions per scene. */
export const CAPTIONS_PER_SCENE = 5;

function pick<T>(rng: Rng, items: readonly T[]): T {
  return items[rng.uniformInt(items.length)];
}

/** "seven" or "7" (each caption decides per digit). */
function digitName(rng: Rng, d: number): string {
  return rng.uniform() < 0.5 ? DIGIT_WORDS[d] : String(d);
}

function sizeWord(rng: Rng, size: DigitSize): string {
  return size === 'large' ? pick(rng, ['large', 'big']) : pick(rng, ['small', 'tiny']);
}

/** "a large seven", "a small 3 at the top" (vpos only when asked and the digit has one). */
function phrase(rng: Rng, g: SceneDigit, withVpos: boolean): string {
  const name = digitName(rng, g.digit);
  // the size word follows the article, and every size word starts with a consonant: always "a"
  const head = `a ${sizeWord(rng, g.size)} ${name}`;
  return withVpos && g.vpos ? `${head} at the ${g.vpos}` : head;
}

/** One caption of a scene, from one of the templates. */
export function captionOf(scene: Scene, rng: Rng): string {
  const withVpos = rng.uniform() < 0.5;
  if (scene.digits.length === 1) {
    const g = scene.digits[0];
    const p = phrase(rng, g, false);
    const templates = [
      () => `${p} on the ${g.side}`,
      () => `${p} on the ${g.side} side`,
      () => (g.vpos && withVpos ? `${p} in the ${g.vpos} ${g.side} corner` : `only ${p} on the ${g.side}`),
      () => `a single ${sizeWord(rng, g.size)} digit ${digitName(rng, g.digit)} on the ${g.side}`,
    ];
    return pick(rng, templates)();
  }
  const [l, r] = scene.digits;
  const templates = [
    () => `${phrase(rng, l, withVpos)} to the left of ${phrase(rng, r, withVpos)}`,
    () => `${phrase(rng, r, withVpos)} to the right of ${phrase(rng, l, withVpos)}`,
    () => `${phrase(rng, l, withVpos)} next to ${phrase(rng, r, withVpos)}`,
    () => `two digits ${phrase(rng, l, withVpos)} and ${phrase(rng, r, withVpos)}`,
    () => `${phrase(rng, l, false)} on the left and ${phrase(rng, r, false)} on the right`,
  ];
  return pick(rng, templates)();
}

/** The seed stream of a split (the held-out split never draws from the training stream). */
function sceneRng(split: SceneSplit, seed: number, index: number): Rng {
  return createRng(`causalfusion-multimodal:${split}:${seed}:${index}`);
}

/** Digit images by class, shrunk once to the two sizes used. */
export interface DigitBank {
  /** MNIST source split. */
  source: 'train' | 'test';
  large: Uint8Array;
  small: Uint8Array;
  /** Image indices of each class. */
  byClass: number[][];
}

const banks = new Map<string, DigitBank>();

/** The MNIST images of a split at 16 x 16 and 10 x 10, cached per process. */
export function digitBank(split: SceneSplit): DigitBank {
  const source = split === 'train' ? 'train' : 'test';
  let bank = banks.get(source);
  if (!bank) {
    const mnist = loadMnist(source);
    const byClass: number[][] = Array.from({ length: 10 }, () => []);
    for (let i = 0; i < mnist.count; i++) byClass[mnist.labels[i]].push(i);
    bank = { source, large: resizeImages(mnist.images, 28, SLOT), small: resizeImages(mnist.images, 28, SMALL), byClass };
    banks.set(source, bank);
  }
  return bank;
}

/** The scene of item `index` (no pixels): digits, sizes, sides, MNIST sources. */
export function sceneOf(split: SceneSplit, seed: number, index: number, bank: DigitBank): { scene: Scene; rng: Rng } {
  const rng = sceneRng(split, seed, index);
  const two = rng.uniform() < 0.6;
  const sides: Side[] = two ? ['left', 'right'] : [pick(rng, ['left', 'right'] as const)];
  const digits = sides.map((side): SceneDigit => {
    const digit = rng.uniformInt(10);
    const size: DigitSize = rng.uniform() < 0.5 ? 'large' : 'small';
    const vpos: VerticalPos | null = size === 'small' ? pick(rng, ['top', 'bottom'] as const) : null;
    const source = pick(rng, bank.byClass[digit]);
    return { digit, size, side, vpos, source };
  });
  return { scene: { digits }, rng };
}

/** Draw a scene on a fresh canvas (overlaps cannot happen: each digit stays in its slot). */
export function renderScene(scene: Scene, bank: DigitBank): Uint8Array {
  const out = new Uint8Array(CANVAS_HEIGHT * CANVAS_WIDTH);
  for (const g of scene.digits) {
    const side = g.size === 'large' ? SLOT : SMALL;
    const src = (g.size === 'large' ? bank.large : bank.small).subarray(g.source * side * side, (g.source + 1) * side * side);
    const x0 = (g.side === 'left' ? 0 : SLOT) + (g.size === 'large' ? 0 : SMALL_X);
    const y0 = g.size === 'large' ? 0 : SMALL_Y[g.vpos!];
    for (let y = 0; y < side; y++) out.set(src.subarray(y * side, (y + 1) * side), (y0 + y) * CANVAS_WIDTH + x0);
  }
  return out;
}

export interface CaptionedDatasetOptions {
  split: SceneSplit;
  /** Items in the split (default: 60,000 for train, 1,000 for heldout). */
  count?: number;
  /** Seed of the scene stream (default 0). */
  seed?: number;
}

/**
 * The captioned MNIST compositions of a split. `get(i)` is deterministic: the same (split, seed, i) gives
 * the same scene, image and captions on every machine.
 */
export class CaptionedDataset {
  readonly split: SceneSplit;
  readonly count: number;
  readonly seed: number;
  readonly height = CANVAS_HEIGHT;
  readonly width = CANVAS_WIDTH;
  private readonly bank: DigitBank;

  constructor(options: CaptionedDatasetOptions) {
    if (options.split !== 'train' && options.split !== 'heldout') {
      throw new Error(`unknown split ${JSON.stringify(options.split)}: use 'train' or 'heldout'`);
    }
    this.split = options.split;
    this.count = options.count ?? (options.split === 'train' ? 60000 : 1000);
    this.seed = options.seed ?? 0;
    if (!Number.isInteger(this.count) || this.count < 1) throw new Error(`count must be a positive integer, got ${this.count}`);
    this.bank = digitBank(this.split);
  }

  get(index: number): CaptionedItem {
    if (!Number.isInteger(index) || index < 0 || index >= this.count) {
      throw new RangeError(`item ${index} is outside the ${this.split} split (0..${this.count - 1})`);
    }
    const { scene, rng } = sceneOf(this.split, this.seed, index, this.bank);
    // distinct captions where the grammar has enough of them (a few draws), so the references vary
    const captions: string[] = [];
    for (let tries = 0; captions.length < CAPTIONS_PER_SCENE; tries++) {
      const c = captionOf(scene, rng);
      if (!captions.includes(c) || tries >= 30) captions.push(c);
    }
    return { index, scene, image: renderScene(scene, this.bank), captions };
  }
}

/** `new CaptionedDataset(options)`. */
export function captionedDataset(options: CaptionedDatasetOptions): CaptionedDataset {
  return new CaptionedDataset(options);
}
