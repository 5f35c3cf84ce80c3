#!/usr/bin/env node
// Benchmark of one CausalFusion training step (forward + backward + grad clip + AdamW) of
// @causalfusion/transformer on tfjs (one worker: the backend that initBackend picks, wasm here) against
// the same model and step in plain PyTorch (Debian's python3-torch, CPU).
//
// Config: 8x8x4 latents (L = 64 tokens, patch 1), 4 cond tokens, width 256, 4 blocks, 4 heads,
// AR splits [6, 6, 52] => sequence 4 + 12 + 64 = 80 tokens, batch 16, 10 classes (+ null).
// The PyTorch side is a small script written here (not the official repo's code) with the same
// layers: x_proj, timestep MLP, label table, sin-cos/learned pos_embed, pre-LN blocks with qkv
// (no bias) + per-head q/k LayerNorm + masked softmax attention, tanh-GELU MLP, final LN + linear.
//
// Each side runs in its own process (so peak RSS is its own): 3 warm-up steps, then STEPS timed steps.
// The machine may be shared, so the two sides alternate for ROUNDS rounds and each keeps its best
// round (the least disturbed one); every round is printed.
// Run from the repository root: `pnpm bench:train-step`. Last line: `train-step speedup=<PyTorch ms / our ms>`.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { mkdtempSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const root = new URL('../..', import.meta.url).pathname;
const WARMUP = 3;
const STEPS = Number(process.env.BENCH_STEPS ?? 8);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const CFG = { batch: 16, inputSize: 8, channels: 4, hidden: 256, depth: 4, heads: 4, condTokens: 4, classes: 10, splits: [6, 6, 52] };

async function runOurs() {
  const pkgDir = join(root, 'packages/transformer');
  const require = createRequire(join(pkgDir, 'package.json'));
  const { CausalDiffusionModel, makeConfig, AdamW, trainStep, initBackend } = require(join(pkgDir, 'dist/index.js'));
  const { createRng } = require('@causalfusion/rng');
  const backend = await initBackend({ quiet: true });
  const config = makeConfig(null, {
    inputSize: CFG.inputSize, patchSize: 1, latentChannels: CFG.channels, hiddenSize: CFG.hidden, depth: CFG.depth,
    numHeads: CFG.heads, numCondTokens: CFG.condTokens, numClasses: CFG.classes, trainablePos: true,
  });
  const model = new CausalDiffusionModel(config, { seed: 0 });
  const opt = new AdamW(model.trainableVariables(), { lr: 1e-4 });
  const rng = createRng(0);
  const x = new Float32Array(CFG.batch * CFG.channels * CFG.inputSize * CFG.inputSize);
  rng.fillNormal(x);
  const y = Array.from({ length: CFG.batch }, (_, i) => i % CFG.classes);
  const step = () => trainStep(model, opt, { x, y }, rng, { splitSizes: CFG.splits });
  for (let i = 0; i < WARMUP; i++) step();
  const t0 = performance.now();
  let loss = 0;
  for (let i = 0; i < STEPS; i++) loss = step().loss;
  const ms = (performance.now() - t0) / STEPS;
  const rssMb = process.resourceUsage().maxRSS / 1024;
  console.log(JSON.stringify({ ms, rssMb, loss, backend, params: model.numParams() }));
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

if (process.argv.includes('--ours')) {
  await runOurs();
} else {
  const python = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
  const dir = mkdtempSync(join(tmpdir(), 'train-step-'));
  const script = join(dir, 'train_step.py');
  writeFileSync(script, PY);
  const torchEnv = { OPENBLAS_NUM_THREADS: '2', OMP_WAIT_POLICY: 'PASSIVE' };
  const torchRuns = [];
  const torch1Runs = [];
  const ourRuns = [];
  for (let r = 0; r < ROUNDS; r++) {
    try {
      torchRuns.push(runChild(python, [script, JSON.stringify(CFG), String(WARMUP), String(STEPS)], torchEnv));
    } catch (err) {
      console.error(String(err.message));
      console.error('PyTorch is needed for the comparison: apt-get install -y python3-torch libopenblas0-pthread');
      process.exit(1);
    }
    ourRuns.push(runChild(process.execPath, [new URL(import.meta.url).pathname, '--ours'], {}));
    // for reference: PyTorch held to one thread, like our one worker
    torch1Runs.push(runChild(python, [script, JSON.stringify(CFG), String(WARMUP), String(STEPS), '1'], { OPENBLAS_NUM_THREADS: '1', OMP_WAIT_POLICY: 'PASSIVE' }));
    console.log(`round ${r + 1}: PyTorch ${torchRuns[r].ms.toFixed(1)} ms/step, ours ${ourRuns[r].ms.toFixed(1)} ms/step, PyTorch 1 thread ${torch1Runs[r].ms.toFixed(1)} ms/step`);
  }
  const best = (runs) => ({ ...runs.reduce((a, b) => (b.ms < a.ms ? b : a)), rssMb: Math.max(...runs.map((x) => x.rssMb)) });
  const torchRes = best(torchRuns);
  const ours = best(ourRuns);
  const torch1 = best(torch1Runs);
  const ratio = ours.ms / torchRes.ms;
  const seq = CFG.condTokens + (CFG.inputSize ** 2 - CFG.splits[CFG.splits.length - 1]) + CFG.inputSize ** 2;
  console.log(`train step: batch ${CFG.batch}, width ${CFG.hidden}, ${CFG.depth} blocks, ${CFG.heads} heads, sequence ${seq} tokens, AR splits [${CFG.splits}]`);
  console.log(`best of ${ROUNDS} rounds x ${STEPS} steps:`);
  console.log(`${'impl'.padEnd(34)} ${'ms/step'.padStart(9)} ${'x PyTorch'.padStart(10)} ${'peak RSS MB'.padStart(12)} ${'params'.padStart(9)}`);
  console.log(`${`PyTorch ${torchRes.torch} CPU (${torchRes.threads} thr, BLAS 2)`.padEnd(34)} ${torchRes.ms.toFixed(1).padStart(9)} ${'1.00'.padStart(10)} ${torchRes.rssMb.toFixed(0).padStart(12)} ${String(torchRes.params).padStart(9)}`);
  console.log(`${`ours, tfjs ${ours.backend} (1 worker)`.padEnd(34)} ${ours.ms.toFixed(1).padStart(9)} ${ratio.toFixed(2).padStart(10)} ${ours.rssMb.toFixed(0).padStart(12)} ${String(ours.params).padStart(9)}`);
  console.log(`${`(ref.) PyTorch, 1 thread, BLAS 1`.padEnd(34)} ${torch1.ms.toFixed(1).padStart(9)} ${(torch1.ms / torchRes.ms).toFixed(2).padStart(10)} ${torch1.rssMb.toFixed(0).padStart(12)} ${String(torch1.params).padStart(9)}`);
  console.log(`ours vs PyTorch on one thread: ${(ours.ms / torch1.ms).toFixed(2)}x its time`);
  console.log(`train-step speedup=${(torchRes.ms / ours.ms).toFixed(3)}`);
}
