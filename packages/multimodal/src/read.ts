/**
 * Reading a generated canvas back, for caption faithfulness: find the ink in each slot, crop it as MNIST
 * frames a digit (the digit's box is ~20/28 of the crop, centred), classify it with the MNIST classifier
 * (the caller's), and compare digits, sides, sizes and top/bottom with what the caption says.
 */
import { CANVAS_HEIGHT, CANVAS_WIDTH, SLOT, type DigitSize, type Scene, type Side } from './scenes';

/** A gray level above this is ink. */
const INK = 64;
/** A slot with fewer ink pixels than this is empty. */
const MIN_INK = 6;

export interface SlotReading {
  side: Side;
  present: boolean;
  /** Ink bounding box within the canvas: [y0, x0, y1, x1) (empty slot: zeros). */
  box: [number, number, number, number];
  size: 'large' | 'small' | null;
  vpos: 'top' | 'bottom' | null;
  /** 28 x 28 crop for the classifier (zeros when empty). */
  crop: Uint8Array;
}

function bilinear(src: Uint8Array, srcW: number, srcH: number, y0: number, x0: number, side: number, out: Uint8Array): void {
  // sample a side x side window at (y0, x0) (outside the canvas = background) onto 28 x 28
  const at = (y: number, x: number) => (y < 0 || x < 0 || y >= srcH || x >= srcW ? 0 : src[y * srcW + x]);
  for (let oy = 0; oy < 28; oy++)
    for (let ox = 0; ox < 28; ox++) {
      const sy = y0 + ((oy + 0.5) * side) / 28 - 0.5;
      const sx = x0 + ((ox + 0.5) * side) / 28 - 0.5;
      const fy = Math.floor(sy);
      const fx = Math.floor(sx);
      const wy = sy - fy;
      const wx = sx - fx;
      const v = (1 - wy) * ((1 - wx) * at(fy, fx) + wx * at(fy, fx + 1)) + wy * ((1 - wx) * at(fy + 1, fx) + wx * at(fy + 1, fx + 1));
      out[oy * 28 + ox] = Math.round(v);
    }
}

/** The two slots of one canvas (CANVAS_HEIGHT x CANVAS_WIDTH gray). */
export function readSlots(image: Uint8Array): SlotReading[] {
  return (['left', 'right'] as const).map((side) => {
    const xs = side === 'left' ? 0 : SLOT;
    let y0 = CANVAS_HEIGHT,
      x0 = CANVAS_WIDTH,
      y1 = 0,
      x1 = 0,
      ink = 0;
    for (let y = 0; y < CANVAS_HEIGHT; y++)
      for (let x = xs; x < xs + SLOT; x++)
        if (image[y * CANVAS_WIDTH + x] > INK) {
          ink++;
          y0 = Math.min(y0, y);
          x0 = Math.min(x0, x);
          y1 = Math.max(y1, y + 1);
          x1 = Math.max(x1, x + 1);
        }
    const crop = new Uint8Array(28 * 28);
    if (ink < MIN_INK) return { side, present: false, box: [0, 0, 0, 0], size: null, vpos: null, crop };
    const h = y1 - y0;
    // a large digit (MNIST's ~20 of 28 rows at 16 pixels) is ~11 rows tall, a small one ~7
    const size = h >= 10 ? 'large' : 'small';
    const vpos = size === 'small' ? ((y0 + y1) / 2 < SLOT / 2 ? 'top' : 'bottom') : null;
    const extent = Math.max(h, x1 - x0) * (28 / 20);
    bilinear(image, CANVAS_WIDTH, CANVAS_HEIGHT, (y0 + y1) / 2 - extent / 2, (x0 + x1) / 2 - extent / 2, extent, crop);
    return { side, present: true, box: [y0, x0, y1, x1], size, vpos, crop };
  });
}

/** What a caption commits to: the scene, with top/bottom only where the caption says it. */
export interface CaptionClaims {
  scene: Scene;
  saysVpos: boolean;
}

export interface FaithfulnessCheck {
  /** Every claim holds. */
  faithful: boolean;
  /** The right digits in the right slots (and no extra digit). */
  digits: boolean;
  /** Occupied slots as stated. */
  placement: boolean;
  sizes: boolean;
  vpos: boolean;
}

/** Compare the readings (with the classifier's labels per slot, left then right) to the caption's claims. */
export function checkFaithfulness(readings: SlotReading[], labels: number[], claims: CaptionClaims): FaithfulnessCheck {
  let digits = true,
    placement = true,
    sizes = true,
    vpos = true;
  readings.forEach((r, i) => {
    const claimed = claims.scene.digits.find((g) => g.side === r.side);
    if (!claimed) {
      if (r.present) placement = digits = false;
      return;
    }
    if (!r.present) {
      placement = digits = sizes = false;
      return;
    }
    if (labels[i] !== claimed.digit) digits = false;
    if (r.size !== claimed.size) sizes = false;
    if (claims.saysVpos && claimed.vpos && r.vpos !== claimed.vpos) vpos = false;
  });
  return { faithful: digits && placement && sizes && vpos, digits, placement, sizes, vpos };
}

/** What a caption commits to: its scene, and top/bottom only where its words say so. */
export function captionClaims(scene: Scene, caption: string): CaptionClaims {
  return { scene, saysVpos: /\b(top|bottom)\b/.test(caption) };
}

/** Any digit classifier over 28 x 28 crops (the eval package's MNIST classifier fits). */
export interface DigitClassifier {
  classify(crops: Uint8Array): Promise<{ labels: ArrayLike<number> }>;
}

/** One scene read back: the caption checks, and each named digit read right or not (with its size). */
export interface SceneScore extends FaithfulnessCheck {
  named: { digit: number; size: DigitSize; right: boolean }[];
}

/**
 * Score images against the scenes their captions describe (image i against items[i]): read the slots,
 * classify the crops, check the claims. The one scoring that bench:multimodal and the ladder share.
 */
export async function scoreScenes(images: Uint8Array[], items: { scene: Scene; caption: string }[], classifier: DigitClassifier): Promise<SceneScore[]> {
  if (images.length !== items.length) throw new Error(`scoreScenes: ${images.length} images for ${items.length} scenes`);
  const readings = images.map(readSlots);
  // one classifier call for every crop (two slots per image, empty slots included)
  const crops = new Uint8Array(readings.length * 2 * 784);
  readings.forEach((rs, i) => rs.forEach((r, k) => crops.set(r.crop, (2 * i + k) * 784)));
  const labels = Array.from((await classifier.classify(crops)).labels);
  return items.map(({ scene, caption }, i) => {
    const slotLabels = labels.slice(2 * i, 2 * i + 2);
    const named = scene.digits.map((g) => {
      const slot = g.side === 'left' ? 0 : 1;
      return { digit: g.digit, size: g.size, right: readings[i][slot].present && slotLabels[slot] === g.digit };
    });
    return { ...checkFaithfulness(readings[i], slotLabels, captionClaims(scene, caption)), named };
  });
}
