#!/usr/bin/env node
// Benchmark of one CausalFusion training step (forward + backward + global-norm clip 1.0 + AdamW) in plain
// PyTorch (Debian's python3-torch, CPU) against the same model and step in our two runtimes:
//   - tfjs: @causalfusion/transformer's trainStep on one worker (the backend that initBackend picks, wasm here);
//   - onnxruntime: @causalfusion/onnx's OrtTrainingSession (one session, 2 intra-op threads) for the loss and
//     gradients, then clipGradArrays + HostAdamW on host arrays (what the ONNX trainer does).
//
// Two configs (10 classes + null, 4 cond tokens, 4 blocks, 4 heads, batch-shared fixed AR splits):
//   mnist: the shipped MNIST preset: 16x16x1 images in 4x4 patches = 16 tokens of 16 values, width 128,
//          batch 64, splits [2, 2, 12] => sequence 4 + 4 + 16 = 24 tokens. (The PyTorch script has no
//          patchify, so it runs the same compute as 4x4 latents with 16 channels in patch 1.)
//   s80:   8x8x4 latents (L = 64 tokens, patch 1), width 256, batch 16, splits [6, 6, 52]
//          => sequence 4 + 12 + 64 = 80 tokens.
// The PyTorch side is a small script written here (not the official repo's code) with the same
// layers: x_proj, timestep MLP, label table, learned pos_embed, pre-LN blocks with qkv (no bias)
// + per-head q/k LayerNorm + masked softmax attention, tanh-GELU MLP, final LN + linear.
// Every side draws its step's randomness (t, noise, token shuffles, label dropout) inside the timed step.
//
// Rows per config: PyTorch on 2 threads (torch.set_num_threads(2), OPENBLAS_NUM_THREADS=2,
// OMP_WAIT_POLICY=PASSIVE: the reference), PyTorch held to 1 thread (for reference), tfjs (1 worker),
// onnxruntime (1 session, 2 intra-op threads).
// Each run is its own process (so peak RSS is its own): 3 warm-up steps, then BENCH_STEPS (default 8) timed
// steps. The machine may be shared, so the runs alternate for BENCH_ROUNDS (default 3) rounds and each row
// keeps its best round (the least disturbed one); every round is printed.
// Run from the repository root: `pnpm bench:train-step`. Last line:
//   `train-step speedup=<the smaller over the two configs of PyTorch (2 threads) ms / onnxruntime ms>`.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { mkdtempSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const root = new URL('../..', import.meta.url).pathname;
const WARMUP = 3;
const STEPS = Number(process.env.BENCH_STEPS ?? 8);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const ORT_THREADS = 2;
const COMMON = { depth: 4, heads: 4, condTokens: 4, classes: 10 };
const CONFIGS = {
  mnist: { ...COMMON, batch: 64, inputSize: 16, patch: 4, channels: 1, hidden: 128, splits: [2, 2, 12] },
  s80: { ...COMMON, batch: 16, inputSize: 8, patch: 1, channels: 4, hidden: 256, splits: [6, 6, 52] },
};

const geometry = (cfg) => {
  const grid = cfg.inputSize / cfg.patch;
  const L = grid * grid;
  return { grid, L, tokenDim: cfg.patch * cfg.patch * cfg.channels, seq: cfg.condTokens + (L - cfg.splits[cfg.splits.length - 1]) + L };
};

/** The PyTorch script's view of a config: tokens of patch 1 (the same compute as patchify + patch p). */
const torchCfg = (cfg) => {
  const g = geometry(cfg);
  return {
    batch: cfg.batch,
    inputSize: g.grid,
    channels: g.tokenDim,
    hidden: cfg.hidden,
    depth: cfg.depth,
    heads: cfg.heads,
    condTokens: cfg.condTokens,
    classes: cfg.classes,
    splits: cfg.splits,
  };
};

function loadOurs() {
  const pkgDir = join(root, 'packages/transformer');
  const require = createRequire(join(pkgDir, 'package.json'));
  const transformer = require(join(pkgDir, 'dist/index.js'));
  const { createRng } = require('@causalfusion/rng');
  return { require, transformer, createRng };
}

const modelConfig = (makeConfig, cfg) =>
  makeConfig(null, {
    inputSize: cfg.inputSize,
    patchSize: cfg.patch,
    latentChannels: cfg.channels,
    hiddenSize: cfg.hidden,
    depth: cfg.depth,
    numHeads: cfg.heads,
    numCondTokens: cfg.condTokens,
    numClasses: cfg.classes,
    trainablePos: true,
  });

/** Warm-up, then STEPS timed steps; prints the child's result line. */
async function timeSteps(step, extra) {
  for (let i = 0; i < WARMUP; i++) await step();
  const t0 = performance.now();
  let loss = 0;
  for (let i = 0; i < STEPS; i++) loss = await step();
  const ms = (performance.now() - t0) / STEPS;
  const rssMb = process.resourceUsage().maxRSS / 1024;
  console.log(JSON.stringify({ ms, rssMb, loss, ...extra }));
}

async function runTfjs(cfg) {
  const { transformer, createRng } = loadOurs();
  const { CausalDiffusionModel, makeConfig, AdamW, trainStep, initBackend } = transformer;
  const backend = await initBackend({ quiet: true });
  const config = modelConfig(makeConfig, cfg);
  const model = new CausalDiffusionModel(config, { seed: 0 });
  const opt = new AdamW(model.trainableVariables(), { lr: 1e-4 });
  const rng = createRng(0);
  const x = new Float32Array(cfg.batch * cfg.channels * cfg.inputSize * cfg.inputSize);
  rng.fillNormal(x);
  const y = Array.from({ length: cfg.batch }, (_, i) => i % cfg.classes);
  // draws t, noise, the shuffles and label dropout from rng; fixed splits; clip 1.0; AdamW
  const step = () => trainStep(model, opt, { x, y }, rng, { splitSizes: cfg.splits }).loss;
  await timeSteps(step, { backend, params: model.numParams() });
}

async function runOrt(cfg) {
  const { transformer, createRng } = loadOurs();
  const { makeConfig, trainingEntries, HostAdamW, clipGradArrays } = transformer;
  const { OrtTrainingSession } = createRequire(join(root, 'packages/onnx/package.json'))(join(root, 'packages/onnx/dist/index.js'));
  const config = modelConfig(makeConfig, cfg);
  const session = await OrtTrainingSession.create(config, { threads: ORT_THREADS });
  const rng = createRng(0);
  const entries = trainingEntries(config);
  // normal(0, 0.02) weights, LayerNorm weights 1, biases 0
  const params = entries.map((e) => {
    const a = new Float32Array(e.shape.reduce((p, q) => p * q, 1));
    if (e.key.endsWith('.bias')) return a;
    if (e.key.endsWith('.weight') && e.shape.length === 1) return a.fill(1);
    for (let i = 0; i < a.length; i++) a[i] = rng.normal() * 0.02;
    return a;
  });
  const trainableIdx = entries.map((e, i) => (e.trainable ? i : -1)).filter((i) => i >= 0);
  const trainableParams = trainableIdx.map((i) => params[i]);
  const adam = new HostAdamW(
    trainableParams.map((p) => p.length),
    { lr: 1e-4, beta1: 0.9, beta2: 0.95, eps: 1e-15 },
  );
  const N = cfg.batch;
  const { L } = geometry(cfg);
  const x = new Float32Array(N * cfg.channels * cfg.inputSize * cfg.inputSize);
  rng.fillNormal(x);
  const y = Int32Array.from({ length: N }, (_, i) => i % cfg.classes);
  const step = async () => {
    const t = Int32Array.from({ length: N }, () => rng.uniformInt(1000));
    const noise = rng.fillNormal(new Float32Array(x.length));
    const idsShuffle = new Int32Array(N * L);
    for (let n = 0; n < N; n++) idsShuffle.set(rng.permutation(L), n * L);
    const labelDropRand = rng.uniformArray(N);
    const { loss, grads } = await session.lossAndGrads(params, {
      x,
      y,
      t,
      noise,
      idsShuffle,
      labelDropRand,
      splitSizes: cfg.splits,
      batchSize: N,
      maxArWeight: 2,
      minArWeight: 1,
    });
    clipGradArrays(grads, 1);
    adam.step(trainableParams, grads);
    return loss;
  };
  await timeSteps(step, { threads: ORT_THREADS, params: params.reduce((s, p) => s + p.length, 0) });
  await session.release();
}

const PY = String.raw`
import json, math, resource, sys, time
import torch, torch.nn as nn, torch.nn.functional as F
cfg = json.loads(sys.argv[1]); WARMUP, STEPS = int(sys.argv[2]), int(sys.argv[3])
if len(sys.argv) > 4: torch.set_num_threads(int(sys.argv[4]))
torch.manual_seed(0)
B, S0, C, D, H, T, K = cfg['batch'], cfg['inputSize'], cfg['channels'], cfg['hidden'], cfg['heads'], cfg['condTokens'], cfg['classes']
L, hd, splits = S0 * S0, D // cfg['heads'], cfg['splits']

class Attn(nn.Module):
    def __init__(s):
        super().__init__(); s.qkv = nn.Linear(D, 3 * D, bias=False); s.proj = nn.Linear(D, D)
        s.qn = nn.LayerNorm(hd); s.kn = nn.LayerNorm(hd)
    def forward(s, x, bias):
        n, l, _ = x.shape
        q, k, v = s.qkv(x).view(n, l, 3, H, hd).permute(2, 0, 3, 1, 4)
        q = s.qn(q) * hd ** -0.5; k = s.kn(k)
        a = (q @ k.transpose(-2, -1) + bias).softmax(-1)
        return s.proj((a @ v).transpose(1, 2).reshape(n, l, D))

class Block(nn.Module):
    def __init__(s):
        super().__init__(); s.n1 = nn.LayerNorm(D); s.attn = Attn(); s.n2 = nn.LayerNorm(D)
        s.fc1 = nn.Linear(D, 4 * D); s.fc2 = nn.Linear(4 * D, D)
    def forward(s, x, bias):
        x = x + s.attn(s.n1(x), bias)
        return x + s.fc2(F.gelu(s.fc1(s.n2(x)), approximate='tanh'))

class Model(nn.Module):
    def __init__(s):
        super().__init__()
        s.x_proj = nn.Linear(C, D); s.t1 = nn.Linear(256, D); s.t2 = nn.Linear(D, D)
        s.table = nn.Embedding(K + 1, T * D); s.pos = nn.Parameter(torch.randn(1, L, D) * 0.02)
        s.cpos = nn.Parameter(torch.randn(1, T, D) * 0.02)
        s.blocks = nn.ModuleList([Block() for _ in range(cfg['depth'])]); s.fn = nn.LayerNorm(D); s.fl = nn.Linear(D, C)
    def temb(s, t):
        f = torch.exp(-math.log(10000) * torch.arange(128, dtype=torch.float32) / 128)
        a = t[:, None].float() * f[None]
        return s.t2(F.silu(s.t1(torch.cat([torch.cos(a), torch.sin(a)], -1))))
    def forward(s, xtok, xntok, noise, t, y, bias, lc):
        n = xtok.shape[0]
        ids = torch.argsort(torch.rand(n, L), 1)
        g = lambda z: torch.gather(z, 1, ids[..., None].expand(-1, -1, z.shape[-1]))
        x = g(s.x_proj(xtok) + s.pos)[:, :lc]; xn = g(s.x_proj(xntok) + s.pos); noise = g(noise)
        y = torch.where(torch.rand(n) < 0.1, K, y)
        cond = s.table(y).view(n, T, D) + s.cpos
        h = torch.cat([cond, x, xn + s.temb(t)[:, None]], 1)
        for b in s.blocks: h = b(h, bias)
        return (noise - s.fl(s.fn(h[:, -L:]))) ** 2

def attn_bias(splits):
    cs = [0]
    for v in splits: cs.append(cs[-1] + v)
    lc = L - splits[-1]; S = T + lc + L
    m = torch.ones(S, S, dtype=torch.bool); m[:, :T] = False
    for k in range(len(splits)):
        a, b = cs[k], cs[k + 1]
        if k < len(splits) - 1: m[T + a:T + b, T:T + b] = False
        m[T + lc + a:T + lc + b, T:T + a] = False; m[T + lc + a:T + lc + b, T + lc + a:T + lc + b] = False
    return torch.zeros(S, S).masked_fill(m, float('-inf')), lc

model = Model(); opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), eps=1e-15, weight_decay=0)
bias, lc = attn_bias(splits)
w = []
for k, v in enumerate(splits): w += [2 - sum(splits[:k]) / L] * v
w = torch.tensor(w).view(1, L, 1)
betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64); abar = torch.cumprod(1 - betas, 0)
x0 = torch.randn(B, L, C); y = torch.arange(B) % K

def step():
    t = torch.randint(0, 1000, (B,)); noise = torch.randn_like(x0)
    a = abar[t].float()[:, None, None]
    xt = a.sqrt() * x0 + (1 - a).sqrt() * noise
    loss = (model(x0, xt, noise, t, y, bias, lc) * w).mean()
    opt.zero_grad(); loss.backward(); torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0); opt.step()
    return loss.item()

for _ in range(WARMUP): step()
t0 = time.perf_counter()
for _ in range(STEPS): loss = step()
ms = (time.perf_counter() - t0) / STEPS * 1000
print(json.dumps({'ms': ms, 'rssMb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 'loss': loss,
                  'threads': torch.get_num_threads(), 'torch': torch.__version__,
                  'params': sum(p.numel() for p in model.parameters())}))
`;

function runChild(cmd, args, env) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', env: { ...process.env, ...env }, maxBuffer: 1 << 24 });
  if (r.status !== 0) throw new Error(`${cmd} ${args[0]} failed (exit ${r.status}):\n${r.stderr}`);
  const lines = r.stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]);
}

const ourIdx = process.argv.indexOf('--ours');
if (ourIdx >= 0) {
  const [impl, name] = process.argv.slice(ourIdx + 1);
  const cfg = CONFIGS[name];
  if (!cfg || (impl !== 'tfjs' && impl !== 'ort')) throw new Error(`--ours tfjs|ort ${Object.keys(CONFIGS).join('|')}`);
  await (impl === 'tfjs' ? runTfjs(cfg) : runOrt(cfg));
} else {
  const python = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
  const dir = mkdtempSync(join(tmpdir(), 'train-step-'));
  const script = join(dir, 'train_step.py');
  writeFileSync(script, PY);
  const self = new URL(import.meta.url).pathname;
  const torchEnv = { OPENBLAS_NUM_THREADS: '2', OMP_WAIT_POLICY: 'PASSIVE' };
  const torch1Env = { OPENBLAS_NUM_THREADS: '1', OMP_WAIT_POLICY: 'PASSIVE' };
  const names = Object.keys(CONFIGS);
  const runs = Object.fromEntries(names.map((n) => [n, { torch: [], torch1: [], tfjs: [], ort: [] }]));
  for (let r = 0; r < ROUNDS; r++) {
    for (const name of names) {
      const pyArgs = [script, JSON.stringify(torchCfg(CONFIGS[name])), String(WARMUP), String(STEPS)];
      const rr = runs[name];
      try {
        rr.torch.push(runChild(python, [...pyArgs, '2'], torchEnv));
      } catch (err) {
        console.error(String(err.message));
        console.error('PyTorch is needed for the comparison: apt-get install -y python3-torch libopenblas0-pthread');
        process.exit(1);
      }
      rr.tfjs.push(runChild(process.execPath, [self, '--ours', 'tfjs', name], {}));
      rr.ort.push(runChild(process.execPath, [self, '--ours', 'ort', name], {}));
      // for reference: PyTorch held to one thread, like tfjs's one worker
      rr.torch1.push(runChild(python, [...pyArgs, '1'], torch1Env));
      const f = (k) => rr[k][r].ms.toFixed(1);
      console.log(`round ${r + 1} ${name}: PyTorch ${f('torch')}, PyTorch 1 thread ${f('torch1')}, tfjs ${f('tfjs')}, onnxruntime ${f('ort')} ms/step`);
    }
  }
  const best = (list) => ({ ...list.reduce((a, b) => (b.ms < a.ms ? b : a)), rssMb: Math.max(...list.map((x) => x.rssMb)) });
  console.log(`best of ${ROUNDS} rounds x ${STEPS} steps (peak RSS: the largest over the rounds):`);
  const speedups = [];
  for (const name of names) {
    const cfg = CONFIGS[name];
    const g = geometry(cfg);
    const rr = runs[name];
    const torch = best(rr.torch);
    const torch1 = best(rr.torch1);
    const tfjs = best(rr.tfjs);
    const ort = best(rr.ort);
    console.log('');
    console.log(
      `${name}: ${cfg.inputSize}x${cfg.inputSize}x${cfg.channels} in ${cfg.patch}x${cfg.patch} patches = ${g.L} tokens of ${g.tokenDim} values, ` +
        `batch ${cfg.batch}, width ${cfg.hidden}, ${cfg.depth} blocks, ${cfg.heads} heads, ${cfg.condTokens} cond tokens, AR splits [${cfg.splits.join(', ')}] => sequence ${g.seq} tokens`,
    );
    console.log(`${'impl'.padEnd(38)} ${'ms/step'.padStart(9)} ${'x PyTorch'.padStart(10)} ${'peak RSS MB'.padStart(12)} ${'params'.padStart(9)}`);
    const row = (label, res) =>
      console.log(
        `${label.padEnd(38)} ${res.ms.toFixed(1).padStart(9)} ${(res.ms / torch.ms).toFixed(2).padStart(10)} ${res.rssMb.toFixed(0).padStart(12)} ${String(res.params).padStart(9)}`,
      );
    row(`PyTorch ${torch.torch} CPU (${torch.threads} thr, BLAS 2)`, torch);
    row('(ref.) PyTorch, 1 thread, BLAS 1', torch1);
    row(`ours, tfjs ${tfjs.backend} (1 worker)`, tfjs);
    row(`ours, onnxruntime (1 session, ${ort.threads} thr)`, ort);
    const speedup = torch.ms / ort.ms;
    speedups.push(speedup);
    console.log(
      `${name}: onnxruntime speedup over PyTorch ${speedup.toFixed(3)} (tfjs ${(torch.ms / tfjs.ms).toFixed(3)}; tfjs vs PyTorch on one thread: ${(tfjs.ms / torch1.ms).toFixed(2)}x its time)`,
    );
  }
  console.log(`train-step speedup=${Math.min(...speedups).toFixed(3)}`);
}
