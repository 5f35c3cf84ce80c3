#!/usr/bin/env bash
# Queue N shards (an array job) and the merge that runs once all of them succeeded:
#   CF_REAL=/data/mnist-test-stats.npz CF_MODEL=/data/model deploy/slurm/submit.sh 8
# Run from anywhere; the jobs run in the repository root. Settings (CF_WORK, CF_MODEL, CF_SAMPLE_ARGS,
# CF_FEATURES, CF_EVAL_ARGS, CF_CLI) travel to the jobs in the environment (sbatch --export=ALL).
set -euo pipefail
n=${1:-4}
[[ "$n" =~ ^[1-9][0-9]*$ ]] || { echo "submit.sh: the shard count must be a positive integer, got '$n'" >&2; exit 2; }
: "${CF_REAL:?submit.sh: export CF_REAL (reference images or their .npz statistics) first}"
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
shards=$(sbatch --parsable --array="0-$((n - 1))" --export="ALL,SHARD_COUNT=$n" deploy/slurm/shards.sbatch)
shards=${shards%%;*} # --parsable prints "jobid" or "jobid;cluster"
merge=$(sbatch --parsable --dependency="afterok:$shards" --export="ALL,SHARD_COUNT=$n" deploy/slurm/merge.sbatch)
merge=${merge%%;*}
echo "shards: array job $shards (0-$((n - 1))); merge: job $merge (after all of them succeed)"
echo "result: ${CF_WORK:-$PWD/runs/sharded}/fid.json"
