import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import sharp from 'sharp';
import { centerCropArr, flipHorizontal, listImageFolder, loadImageFolder } from './image-folder';

let root: string;
beforeEach(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'cf-imgfolder-'));
});
afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

/** A w x h RGB image: left half red, right half blue. */
function halves(w: number, h: number): Buffer {
  const px = Buffer.alloc(w * h * 3);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) px[(y * w + x) * 3 + (x < w / 2 ? 0 : 2)] = 255;
  return px;
}

async function write(file: string, w: number, h: number, format: 'png' | 'jpeg'): Promise<void> {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const img = sharp(halves(w, h), { raw: { width: w, height: h, channels: 3 } });
  await (format === 'png' ? img.png() : img.jpeg({ quality: 95 })).toFile(file);
}

describe('loadImageFolder', () => {
  it('loads PNG and JPEG, one class per sorted sub-folder, center-cropped to imageSize', async () => {
    await write(path.join(root, 'dog', 'a.png'), 16, 8, 'png');
    await write(path.join(root, 'cat', 'b.jpg'), 8, 8, 'jpeg');
    await write(path.join(root, 'cat', 'c.JPEG'), 40, 10, 'jpeg');
    fs.writeFileSync(path.join(root, 'cat', 'notes.txt'), 'not an image');
    const ds = await loadImageFolder(root, { imageSize: 8, channels: 3 });
    expect(ds.classNames).toEqual(['cat', 'dog']);
    expect(ds.files.map((f) => path.basename(f))).toEqual(['b.jpg', 'c.JPEG', 'a.png']);
    expect(Array.from(ds.labels)).toEqual([0, 0, 1]);
    expect(ds.images.length).toBe(3 * 8 * 8 * 3);
    // dog/a.png is 16x8: already 8 high, so no resize; the center crop keeps x = 4..11, whose left
    // half (x 4..7) is red and right half blue
    const dog = ds.images.subarray(2 * 192, 3 * 192);
    expect([dog[0], dog[2]]).toEqual([255, 0]);
    expect([dog[7 * 3], dog[7 * 3 + 2]]).toEqual([0, 255]);
  });

  it('converts to one gray channel', async () => {
    await write(path.join(root, 'a', 'x.png'), 8, 8, 'png');
    const ds = await loadImageFolder(root, { imageSize: 4, channels: 1 });
    expect(ds.channels).toBe(1);
    expect(ds.images.length).toBe(16);
  });

  it('names the corrupt file', async () => {
    await write(path.join(root, 'a', 'good.png'), 8, 8, 'png');
    fs.writeFileSync(path.join(root, 'a', 'broken.png'), 'this is not a png');
    await expect(loadImageFolder(root, { imageSize: 4 })).rejects.toThrow(/cannot decode image .*broken\.png/);
  });

  it('rejects a missing folder, a folder without classes and an empty class', async () => {
    expect(() => listImageFolder(path.join(root, 'nope'))).toThrow(/does not exist/);
    expect(() => listImageFolder(root)).toThrow(/has no class sub-folders/);
    fs.mkdirSync(path.join(root, 'empty'));
    expect(() => listImageFolder(root)).toThrow(/class folder .*empty has no PNG or JPEG images/);
  });
});

describe('centerCropArr', () => {
  it('box-halves large images, then resizes the short side and crops the center', async () => {
    // 64x32 gray ramp along x -> halved twice to 16x8 (short side 8 >= 2*4), then to 8x4 bicubic, crop x 2..5
    const w = 64;
    const h = 32;
    const src = new Uint8Array(w * h);
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) src[y * w + x] = x * 4;
    const out = await centerCropArr(src, w, h, 1, 4);
    expect(out.length).toBe(16);
    // a ramp stays a ramp: increasing along x, constant along y
    for (let y = 0; y < 4; y++) {
      expect(Array.from(out.subarray(y * 4, y * 4 + 4))).toEqual(Array.from(out.subarray(0, 4)));
      for (let x = 1; x < 4; x++) expect(out[y * 4 + x]).toBeGreaterThan(out[y * 4 + x - 1]);
    }
    // the centre of the ramp (x around 32 of 64 -> value about 128)
    expect(Math.abs((out[1] + out[2]) / 2 - 128)).toBeLessThan(16);
  });
});

describe('flipHorizontal', () => {
  it('mirrors each row, keeping channels together', () => {
    const img = Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]); // 3 wide, 2 high, 2 channels
    flipHorizontal(img, 3, 2, 2);
    expect(Array.from(img)).toEqual([5, 6, 3, 4, 1, 2, 11, 12, 9, 10, 7, 8]);
  });
});
