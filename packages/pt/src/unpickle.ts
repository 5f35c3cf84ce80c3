/**
 * A pickle reader for exactly what a PyTorch state_dict checkpoint holds, and nothing more. Python's
 * pickle can name any importable callable and run it (that is why `torch.load` of an untrusted file is
 * unsafe); this reader never executes anything: it knows a short list of globals and builds plain
 * JavaScript values for them, and refuses every other global with an Error naming it.
 *
 * Known globals: collections.OrderedDict (-> Map), torch._utils._rebuild_tensor_v2 (-> TorchTensor),
 * torch.<X>Storage (storage types), argparse.Namespace (-> a plain object), and the builtins torch.save
 * uses for containers. Opcodes: those of protocols 2-5 that build such values.
 */

/** A persistent storage reference as torch.save writes it: ('storage', type, key, location, numel). */
export interface StorageRef {
  kind: 'storage';
  dtype: StorageDtype;
  key: string;
  numel: number;
}

export type StorageDtype = 'float32' | 'float16' | 'bfloat16' | 'float64' | 'int64' | 'int32' | 'int16' | 'int8' | 'uint8' | 'bool';

/** What torch._utils._rebuild_tensor_v2 describes: a strided view of a storage. */
export interface TensorRef {
  kind: 'tensor';
  storage: StorageRef;
  offset: number;
  shape: number[];
  stride: number[];
}

/** An argparse.Namespace (train.py's `args`): its attributes. */
export interface Namespace {
  kind: 'namespace';
  attributes: Record<string, unknown>;
}

/** The storage classes torch.save names and the element type of each. */
const STORAGES: Record<string, StorageDtype> = {
  FloatStorage: 'float32',
  HalfStorage: 'float16',
  BFloat16Storage: 'bfloat16',
  DoubleStorage: 'float64',
  LongStorage: 'int64',
  IntStorage: 'int32',
  ShortStorage: 'int16',
  CharStorage: 'int8',
  ByteStorage: 'uint8',
  BoolStorage: 'bool',
};

/** A known global, as the stack holds it before REDUCE / NEWOBJ uses it. */
interface Global {
  kind: 'global';
  name: string;
}

const MARK = Symbol('mark');

const isGlobal = (x: unknown, name?: string): x is Global =>
  typeof x === 'object' && x !== null && (x as Global).kind === 'global' && (name === undefined || (x as Global).name === name);

/**
 * Read a pickle stream. `persistentLoad` resolves BINPERSID references (torch.save's storages).
 * Returns the value the stream ends with (STOP).
 */
export function unpickle(data: Uint8Array, source: string, persistentLoad: (pid: unknown) => unknown): unknown {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const stack: unknown[] = [];
  const memo = new Map<number, unknown>();
  let pos = 0;
  const fail = (problem: string): never => {
    throw new Error(`${source}: ${problem} (at byte ${pos} of the pickle)`);
  };
  const need = (n: number) => {
    if (pos + n > data.length) fail('the pickle ends early (truncated file)');
  };
  const u8 = () => (need(1), data[pos++]);
  const u16 = () => (need(2), (pos += 2), view.getUint16(pos - 2, true));
  const u32 = () => (need(4), (pos += 4), view.getUint32(pos - 4, true));
  const i32 = () => (need(4), (pos += 4), view.getInt32(pos - 4, true));
  const bytes = (n: number) => {
    need(n);
    pos += n;
    return data.subarray(pos - n, pos);
  };
  const text = (n: number) => {
    const b = bytes(n);
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(b);
    } catch {
      return fail('a string that is not valid UTF-8 (corrupt data)');
    }
  };
  const line = () => {
    const end = data.indexOf(0x0a, pos);
    if (end < 0) fail('a text field has no end (truncated file)');
    const s = new TextDecoder().decode(data.subarray(pos, end));
    pos = end + 1;
    return s;
  };
  const pop = () => (stack.length ? stack.pop() : fail('the pickle pops an empty stack (corrupt data)'));
  const top = () => (stack.length ? stack[stack.length - 1] : fail('the pickle reads an empty stack (corrupt data)'));
  const popMark = (): unknown[] => {
    let i = stack.length - 1;
    while (i >= 0 && stack[i] !== MARK) i--;
    if (i < 0) fail('no MARK for a MARK-terminated opcode (corrupt data)');
    const items = stack.splice(i + 1);
    stack.pop();
    return items;
  };
  const setItems = (target: unknown, items: unknown[]) => {
    if (items.length % 2) fail('SETITEMS with an odd number of items');
    for (let i = 0; i < items.length; i += 2) {
      const key = items[i];
      if (target instanceof Map) target.set(key, items[i + 1]);
      else if (typeof target === 'object' && target !== null && !Array.isArray(target)) {
        if (typeof key !== 'string' && typeof key !== 'number') fail('a dict key that is not a string or number');
        (target as Record<string, unknown>)[String(key)] = items[i + 1];
      } else fail('SETITEM(S) on something that is not a dict');
    }
  };
  const global = (module: string, name: string): Global => {
    const full = `${module}.${name}`;
    const known =
      full === 'collections.OrderedDict' ||
      full === 'torch._utils._rebuild_tensor_v2' ||
      full === 'argparse.Namespace' ||
      (module === 'torch' && name in STORAGES) ||
      full === 'torch._utils._rebuild_parameter';
    if (!known) {
      fail(
        `the checkpoint names the Python global ${full}, which a state_dict checkpoint does not hold; it is refused, ` +
          'never imported or run (save the weights alone: torch.save(model.state_dict(), path))',
      );
    }
    return { kind: 'global', name: full };
  };
  /** REDUCE / NEWOBJ: call a known global with arguments. */
  const call = (fn: unknown, args: unknown): unknown => {
    if (!isGlobal(fn)) return fail('REDUCE of something that is not a known global');
    if (!Array.isArray(args)) return fail(`${fn.name} called without an argument tuple`);
    switch (fn.name) {
      case 'collections.OrderedDict':
        return new Map();
      case 'argparse.Namespace':
        return { kind: 'namespace', attributes: {} } satisfies Namespace;
      case 'torch._utils._rebuild_tensor_v2': {
        const [storage, offset, shape, stride] = args as [StorageRef, number, number[], number[]];
        const ints = (x: unknown) => Array.isArray(x) && x.every((v) => Number.isSafeInteger(v) && v >= 0);
        if (!storage || (storage as StorageRef).kind !== 'storage') fail('_rebuild_tensor_v2 without a storage');
        if (!Number.isSafeInteger(offset) || offset < 0 || !ints(shape) || !ints(stride) || shape.length !== stride.length) {
          fail('_rebuild_tensor_v2 with a bad offset, size or stride');
        }
        return { kind: 'tensor', storage, offset, shape, stride } satisfies TensorRef;
      }
      case 'torch._utils._rebuild_parameter': {
        const [tensor] = args as [TensorRef];
        if (!tensor || tensor.kind !== 'tensor') fail('_rebuild_parameter without a tensor');
        return tensor;
      }
      default:
        return fail(`${fn.name} cannot be called`);
    }
  };

  need(1);
  for (;;) {
    const op = u8();
    switch (op) {
      case 0x80: // PROTO
        if (u8() > 5) fail('pickle protocol above 5');
        break;
      case 0x95: // FRAME (protocol 4): a length we do not need
        bytes(8);
        break;
      case 0x2e: // STOP
        if (stack.length !== 1) fail('the pickle stops with a malformed stack');
        return stack[0];
      case 0x28: // MARK
        stack.push(MARK);
        break;
      case 0x7d: // EMPTY_DICT
        stack.push({});
        break;
      case 0x5d: // EMPTY_LIST
        stack.push([]);
        break;
      case 0x29: // EMPTY_TUPLE
        stack.push([]);
        break;
      case 0x4e: // NONE
        stack.push(null);
        break;
      case 0x88: // NEWTRUE
        stack.push(true);
        break;
      case 0x89: // NEWFALSE
        stack.push(false);
        break;
      case 0x4b: // BININT1
        stack.push(u8());
        break;
      case 0x4d: // BININT2
        stack.push(u16());
        break;
      case 0x4a: // BININT
        stack.push(i32());
        break;
      case 0x8a: {
        // LONG1: a little-endian two's-complement integer of n bytes
        const n = u8();
        const b = bytes(n);
        let v = 0n;
        for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]);
        if (n > 0 && b[n - 1] & 0x80) v -= 1n << BigInt(8 * n);
        if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER)) fail('an integer beyond 2^53');
        stack.push(Number(v));
        break;
      }
      case 0x47: // BINFLOAT (big-endian double)
        need(8);
        stack.push(view.getFloat64(pos, false));
        pos += 8;
        break;
      case 0x58: // BINUNICODE
        stack.push(text(u32()));
        break;
      case 0x8c: // SHORT_BINUNICODE
        stack.push(text(u8()));
        break;
      case 0x55: // SHORT_BINSTRING
        stack.push(new TextDecoder().decode(bytes(u8())));
        break;
      case 0x54: // BINSTRING
        stack.push(new TextDecoder().decode(bytes(i32())));
        break;
      case 0x43: // SHORT_BINBYTES
        stack.push(bytes(u8()).slice());
        break;
      case 0x42: // BINBYTES
        stack.push(bytes(u32()).slice());
        break;
      case 0x71: // BINPUT
        memo.set(u8(), top());
        break;
      case 0x72: // LONG_BINPUT
        memo.set(u32(), top());
        break;
      case 0x94: // MEMOIZE
        memo.set(memo.size, top());
        break;
      case 0x68: // BINGET
      case 0x6a: {
        // LONG_BINGET
        const i = op === 0x68 ? u8() : u32();
        if (!memo.has(i)) fail(`memo entry ${i} is read before it is written (corrupt data)`);
        stack.push(memo.get(i));
        break;
      }
      case 0x63: // GLOBAL: "module\nname\n"
        stack.push(global(line(), line()));
        break;
      case 0x93: {
        // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') fail('STACK_GLOBAL of non-strings');
        stack.push(global(module as string, name as string));
        break;
      }
      case 0x74: // TUPLE
        stack.push(popMark());
        break;
      case 0x85: // TUPLE1
        stack.push([pop()]);
        break;
      case 0x86: {
        // TUPLE2
        const b = pop();
        stack.push([pop(), b]);
        break;
      }
      case 0x87: {
        // TUPLE3
        const c = pop();
        const b = pop();
        stack.push([pop(), b, c]);
        break;
      }
      case 0x6c: // LIST
        stack.push(popMark());
        break;
      case 0x64: {
        // DICT
        const d = {};
        setItems(d, popMark());
        stack.push(d);
        break;
      }
      case 0x61: {
        // APPEND
        const v = pop();
        const list = top();
        if (!Array.isArray(list)) fail('APPEND to something that is not a list');
        (list as unknown[]).push(v);
        break;
      }
      case 0x65: {
        // APPENDS
        const items = popMark();
        const list = top();
        if (!Array.isArray(list)) fail('APPENDS to something that is not a list');
        (list as unknown[]).push(...items);
        break;
      }
      case 0x73: {
        // SETITEM
        const v = pop();
        const k = pop();
        setItems(top(), [k, v]);
        break;
      }
      case 0x75: {
        // SETITEMS
        const items = popMark();
        setItems(top(), items);
        break;
      }
      case 0x52: {
        // REDUCE
        const args = pop();
        stack.push(call(pop(), args));
        break;
      }
      case 0x81: {
        // NEWOBJ
        const args = pop();
        stack.push(call(pop(), args));
        break;
      }
      case 0x62: {
        // BUILD: set an object's state
        const state = pop();
        const target = top();
        if (typeof target === 'object' && target !== null && (target as Namespace).kind === 'namespace') {
          if (typeof state !== 'object' || state === null || Array.isArray(state)) fail('a Namespace built from a non-dict state');
          Object.assign((target as Namespace).attributes, state);
        } else if (target instanceof Map) {
          // an OrderedDict's instance dict (state_dict's _metadata): not part of the weights
        } else fail('BUILD of an object that has no state to set');
        break;
      }
      case 0x51: // BINPERSID
        stack.push(persistentLoad(pop()));
        break;
      default:
        fail(`unsupported pickle opcode 0x${op.toString(16)}; a state_dict checkpoint does not use it`);
    }
  }
}

/** torch.save's persistent id for a storage, checked. */
export function storageRef(pid: unknown, source: string): StorageRef {
  if (!Array.isArray(pid) || pid.length !== 5 || pid[0] !== 'storage') throw new Error(`${source}: a persistent reference that is not a storage`);
  const [, type, key, , numel] = pid;
  if (!isGlobal(type)) throw new Error(`${source}: a storage without a storage type`);
  const dtype = STORAGES[type.name.slice('torch.'.length)];
  if (!dtype) throw new Error(`${source}: ${type.name} is not a storage type`);
  if (typeof key !== 'string' || !Number.isSafeInteger(numel) || numel < 0) throw new Error(`${source}: a storage reference with a bad key or size`);
  return { kind: 'storage', dtype, key, numel };
}
