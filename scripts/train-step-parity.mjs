#!/usr/bin/env node
// One onnxruntime training step on a case file in the format of the official reference
// ../shared/reference/official_tiny/training_backward.json (inputs, loss, every gradient, parameters after
// clip + one AdamW step), from the weights it started at (default: official_tiny/weights.safetensors).
// Prints each parameter's errors, then, last:
//   parity loss_err=<rel> grad_err=<max rel> update_err=<max rel>
// Usage (after `pnpm build`): node scripts/train-step-parity.mjs CASE.json [--weights W.safetensors] [--threads N]
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const require = createRequire(join(root, 'packages/onnx/package.json'));
const fail = (message) => {
  console.error(`train-step-parity: ${message}`);
  process.exit(2);
};

const args = process.argv.slice(2);
const flag = (name) => {
  const i = args.indexOf(name);
  if (i < 0) return undefined;
  const value = args[i + 1];
  if (value === undefined || value.startsWith('--')) fail(`${name} needs a value`);
  args.splice(i, 2);
  return value;
};
const weightsArg = flag('--weights');
const threads = Number(flag('--threads') ?? 1);
if (!Number.isInteger(threads) || threads < 1) fail('--threads must be a positive integer');
if (args.length !== 1) fail('usage: node scripts/train-step-parity.mjs CASE.json [--weights W.safetensors] [--threads N]');
const caseFile = resolve(args[0]);
if (!existsSync(caseFile)) fail(`${caseFile} does not exist`);
const weightsFile = resolve(weightsArg ?? join(root, '../shared/reference/official_tiny/weights.safetensors'));
if (!existsSync(weightsFile)) fail(`${weightsFile} does not exist; give the weights the case started from with --weights`);
if (!existsSync(join(root, 'packages/onnx/dist/index.js'))) fail('packages/onnx is not built; run pnpm build first');

const { trainStepParity } = require(join(root, 'packages/onnx/dist/index.js'));
const { readSafetensors } = require('@causalfusion/safetensors');
let testCase;
try {
  testCase = JSON.parse(readFileSync(caseFile, 'utf8'));
} catch (e) {
  fail(`${caseFile} is not JSON (${e.message})`);
}
let p;
try {
  p = await trainStepParity(testCase, readSafetensors(weightsFile).tensors, threads);
} catch (e) {
  fail(e.message);
}
console.log(`case ${caseFile}`);
console.log(`loss ${p.loss} (reference ${p.refLoss}), grad norm before clipping ${p.gradNorm}${p.refGradNorm !== null ? ` (reference ${p.refGradNorm})` : ''}`);
console.log("parameter                                  grad err   update err   (max |ours - ref| / the tensor's max |ref|)");
for (const [key, g] of p.gradErrs) {
  const u = p.updateErrs.get(key);
  console.log(`${key.padEnd(42)} ${g.toExponential(2).padStart(9)}   ${u === undefined ? 'roundoff'.padStart(10) : u.toExponential(2).padStart(10)}`);
}
if (p.roundoff.length)
  console.log(`roundoff-level reference gradients (compared on the largest gradient's scale, update not compared): ${p.roundoff.join(', ')}`);
if (p.epsDominated) console.log(`${p.epsDominated} entries with |grad| < 1e-6 (AdamW step set by eps): checked to move by at most lr`);
console.log(`parity loss_err=${p.lossErr.toExponential(2)} grad_err=${p.gradErr.toExponential(2)} update_err=${p.updateErr.toExponential(2)}`);
