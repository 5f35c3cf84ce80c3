import { centerSquare, compositeEdit, describeFit, resizeArea } from './images';

const gray = (data: number[], width: number, height: number) => ({ data: Uint8Array.from(data), width, height, channels: 1 });

describe('resizeArea', () => {
  it('an integer reduction is block averaging; an integer enlargement is pixel repetition (and back, exactly)', () => {
    expect(Array.from(resizeArea(gray([0, 10, 100, 110, 20, 30, 120, 131, 1, 1, 2, 2, 1, 1, 2, 2], 4, 4), 2, 2))).toEqual([15, 115, 1, 2]);
    const up = resizeArea(gray([7, 200], 2, 1), 6, 3);
    expect(Array.from(up)).toEqual([7, 7, 7, 200, 200, 200, 7, 7, 7, 200, 200, 200, 7, 7, 7, 200, 200, 200]);
    expect(Array.from(resizeArea({ data: up, width: 6, height: 3, channels: 1 }, 2, 1))).toEqual([7, 200]);
  });

  it('other sizes weight each input pixel by the part of it an output pixel covers', () => {
    // 3 -> 2: output 0 covers pixel 0 and half of pixel 1; output 1 the other half and pixel 2
    expect(Array.from(resizeArea(gray([0, 30, 60], 3, 1), 2, 1))).toEqual([10, 50]);
    // channels stay apart
    expect(Array.from(resizeArea({ data: Uint8Array.from([0, 255, 30, 255, 60, 255]), width: 3, height: 1, channels: 2 }, 2, 1))).toEqual([10, 255, 50, 255]);
  });
});

describe('edit geometry', () => {
  it('describes how an input is brought to the model size', () => {
    expect(describeFit(16, 16, 16)).toBeNull();
    expect(describeFit(32, 32, 16)).toBe('reduced 2x by block averaging to 16x16');
    expect(describeFit(28, 28, 16)).toBe('resized by area to 16x16');
    expect(describeFit(8, 8, 16)).toBe('enlarged 2x by pixel repetition to 16x16');
    expect(describeFit(56, 40, 28)).toBe('center-cropped to 40x40, resized by area to 28x28');
    expect(centerSquare(56, 40)).toEqual({ left: 8, top: 0, side: 40 });
  });

  it('compositeEdit changes only the pixels whose centers lie in regenerated tokens', () => {
    // a 6x6 original over a 4x4 model in 2x2 tokens (2x2 grid); regenerate token 1 (top right)
    const original = gray(
      Array.from({ length: 36 }, (_, i) => i),
      6,
      6,
    );
    const out = compositeEdit(original, new Uint8Array(16).fill(255), 4, Uint8Array.from([0, 1, 0, 0]), 2);
    // pixel X's center (X + 0.5) * 4 / 6 is in token column 1 for X >= 3; rows Y <= 2 in token row 0
    for (let y = 0; y < 6; y++) for (let x = 0; x < 6; x++) expect(out[y * 6 + x]).toBe(y < 3 && x >= 3 ? 255 : y * 6 + x);
  });
});
