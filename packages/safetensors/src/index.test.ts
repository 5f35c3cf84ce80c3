import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { parseSafetensors, readSafetensors, serializeSafetensors, writeSafetensors } from './index';

const OFFICIAL = path.resolve(__dirname, '../../../../shared/reference/official_tiny/weights.safetensors');

/** A file with a hand-written header and raw data. */
function handMade(header: object, data: Uint8Array): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

describe('safetensors', () => {
  it('reads the official tiny checkpoint (43 keys, state_dict order) and writes it back byte for byte', () => {
    const bytes = fs.readFileSync(OFFICIAL);
    const { tensors, metadata } = parseSafetensors(bytes);
    expect(tensors.size).toBe(43);
    expect([...tensors.keys()][0]).toBe('pos_embed');
    expect(tensors.get('x_proj.weight')!.shape).toEqual([64, 4]);
    expect(metadata).toEqual({ format: 'pt' });
    const again = serializeSafetensors(tensors, metadata);
    expect(parseSafetensors(again).tensors.get('blocks.1.mlp.fc2.weight')!.data).toEqual(tensors.get('blocks.1.mlp.fc2.weight')!.data);
    expect(again.length % 8).toBe(bytes.length % 8);
  });
  it('reads F64, F16 and BF16 as float32', () => {
    const raw = new Uint8Array(8 + 4 + 4);
    const v = new DataView(raw.buffer);
    v.setFloat64(0, 1.5, true);
    v.setUint16(8, 0x3c00, true); // 1.0 in half
    v.setUint16(10, 0xc000, true); // -2.0 in half
    v.setUint16(12, 0x4049, true); // bf16 of ~3.14
    v.setUint16(14, 0x0000, true);
    const { tensors } = parseSafetensors(
      handMade(
        {
          a: { dtype: 'F64', shape: [1], data_offsets: [0, 8] },
          h: { dtype: 'F16', shape: [2], data_offsets: [8, 12] },
          b: { dtype: 'BF16', shape: [2], data_offsets: [12, 16] },
        },
        raw,
      ),
    );
    expect(Array.from(tensors.get('a')!.data)).toEqual([1.5]);
    expect(Array.from(tensors.get('h')!.data)).toEqual([1, -2]);
    expect(tensors.get('b')!.data[0]).toBeCloseTo(3.140625, 6);
  });
  it('writes atomically and reads back with metadata', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'st-'));
    const file = path.join(dir, 'sub', 'w.safetensors');
    writeSafetensors(file, { w: { shape: [2, 2], data: Float32Array.of(1, 2, 3, 4) } }, { step: '7' });
    expect(fs.readdirSync(path.dirname(file))).toEqual(['w.safetensors']); // no temporary left behind
    const { tensors, metadata } = readSafetensors(file);
    expect(Array.from(tensors.get('w')!.data)).toEqual([1, 2, 3, 4]);
    expect(metadata).toEqual({ step: '7' });
    fs.rmSync(dir, { recursive: true });
  });
  it('bad files are clear errors naming the file', () => {
    expect(() => readSafetensors('/nonexistent/x.safetensors')).toThrow('cannot read /nonexistent/x.safetensors: no such file');
    expect(() => parseSafetensors(new Uint8Array(3), 'f.st')).toThrow('f.st is not a valid safetensors file: only 3 bytes');
    const pt = new Uint8Array(100).fill(0x80);
    expect(() => parseSafetensors(pt, 'model.pt')).toThrow(/exceeds the file size 100 \(a PyTorch \.pt file\? convert it/);
    expect(() => parseSafetensors(handMade({ a: { dtype: 'I8', shape: [1], data_offsets: [0, 1] } }, new Uint8Array(1)))).toThrow(
      /dtype I8; supported: F32, F64, F16, BF16/,
    );
    expect(() => parseSafetensors(handMade({ a: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, new Uint8Array(8)))).toThrow(
      /data_offsets \[0, 16\] but 8 data bytes/,
    );
    expect(() => serializeSafetensors({ a: { shape: [3], data: new Float32Array(2) } })).toThrow(/has 2 values but shape \[3\] needs 3/);
  });
});
