#!/usr/bin/env bash
# One shard of a sharded sampling + FID run, the same on Kubernetes, Slurm or a laptop:
#   1. causalfusion sample --out-dir $CF_WORK/samples --shard i/N   (this shard's images, one PNG each)
#   2. causalfusion eval fid --fake $CF_WORK/samples --shard i/N --save-partial $CF_WORK/parts/part-i.npz
# deploy/merge.sh then turns the N parts into the FID of all images. See deploy/README.md.
#
# The shard index i comes from the scheduler:
#   SHARD_INDEX           (set by hand, e.g. a for loop), else
#   JOB_COMPLETION_INDEX  (Kubernetes Indexed Job: 0 .. completions-1), else
#   SLURM_ARRAY_TASK_ID   (Slurm array job --array=0-(N-1); the task id is the shard).
# N is SHARD_COUNT, else SLURM_ARRAY_TASK_COUNT (right for the whole array; set SHARD_COUNT when resubmitting
# some of its tasks, e.g. SHARD_COUNT=8 sbatch --array=3 deploy/slurm/shards.sbatch).
# Other settings (environment):
#   CF_WORK         shared folder: samples/ (the images), parts/ (one .npz per shard)        required
#   CF_MODEL        model folder (or an official .pt checkpoint); empty: the shipped model
#   CF_SAMPLE_ARGS  more flags for `sample`, split on spaces (identical in every shard), e.g.
#                   "--num 5000 --steps 250 --ar-steps 4 --cfg 1.5 --seed 0 --batch-size 64"
#   CF_FEATURES     mnist (default) or the path of an InceptionV3 .onnx
#   CF_EVAL_ARGS    more flags for `eval fid`, e.g. "--batch-size 100"
#   CF_CLI          the causalfusion command (default: `causalfusion` on PATH, else this checkout's CLI)
# Re-running a shard (a retried pod or array task) redraws the same images and rewrites its part.
set -euo pipefail

fail() { echo "shard.sh: $*" >&2; exit 2; }

if [[ -n "${SHARD_INDEX:-}" ]]; then
  index=$SHARD_INDEX
elif [[ -n "${JOB_COMPLETION_INDEX:-}" ]]; then
  index=$JOB_COMPLETION_INDEX
elif [[ -n "${SLURM_ARRAY_TASK_ID:-}" ]]; then
  index=$SLURM_ARRAY_TASK_ID
else
  fail "no shard index: set JOB_COMPLETION_INDEX (Kubernetes Indexed Job), SLURM_ARRAY_TASK_ID (Slurm array) or SHARD_INDEX"
fi
count=${SHARD_COUNT:-${SLURM_ARRAY_TASK_COUNT:-}}
[[ -n "$count" ]] || fail "no shard count: set SHARD_COUNT (the Job's completions, the array's size)"
[[ "$index" =~ ^[0-9]+$ && "$count" =~ ^[0-9]+$ ]] || fail "shard $index/$count is not two numbers"
(( index < count )) || fail "shard index $index is not below the shard count $count"
work=${CF_WORK:?shard.sh: set CF_WORK to the shared folder}

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=deploy/cli.sh
source "$here/cli.sh"
read -r -a sample_args <<<"${CF_SAMPLE_ARGS:-}"
read -r -a eval_args <<<"${CF_EVAL_ARGS:-}"
model=()
[[ -n "${CF_MODEL:-}" ]] && model=(--model "$CF_MODEL")

mkdir -p "$work/samples" "$work/parts"
echo "shard $index/$count: sampling into $work/samples" >&2
"${cli[@]}" sample "${model[@]}" --out-dir "$work/samples" --shard "$index/$count" "${sample_args[@]}"
echo "shard $index/$count: partial FID statistics -> $work/parts/part-$index.npz" >&2
"${cli[@]}" eval fid --fake "$work/samples" --shard "$index/$count" --features "${CF_FEATURES:-mnist}" \
  --save-partial "$work/parts/part-$index.npz" "${eval_args[@]}"
