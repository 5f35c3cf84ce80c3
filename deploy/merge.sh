#!/usr/bin/env bash
# After every shard of deploy/shard.sh: merge $CF_WORK/parts/part-*.npz into the FID of all images against
# CF_REAL (a folder of reference images or their statistics .npz), as `causalfusion eval fid` would print
# it for the whole folder. Writes $CF_WORK/fid.json (one JSON line, also printed) and the merged statistics
# $CF_WORK/fake-stats.npz. A missing, duplicate or mismatched part is an error naming it (exit code 2).
# Environment: CF_WORK, CF_REAL (required), SHARD_COUNT (checked against the parts when set), CF_FEATURES
# (mnist, or the InceptionV3 .onnx the shards used; needed when CF_REAL is a folder), CF_CLI (see shard.sh).
set -euo pipefail

fail() { echo "merge.sh: $*" >&2; exit 2; }
work=${CF_WORK:?merge.sh: set CF_WORK to the shared folder}
real=${CF_REAL:?merge.sh: set CF_REAL to the reference images (folder) or statistics (.npz)}

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=deploy/cli.sh
source "$here/cli.sh"

# With SHARD_COUNT: parts 0..N-1 (a stale part of an earlier, larger run is left out); else every part.
# `eval merge` refuses a set that is not shards 0..N-1 of one run, each once, and names what is missing.
parts=()
if [[ -n "${SHARD_COUNT:-}" ]]; then
  [[ "$SHARD_COUNT" =~ ^[0-9]+$ ]] || fail "SHARD_COUNT=$SHARD_COUNT is not a number"
  for ((i = 0; i < SHARD_COUNT; i++)); do
    [[ -f "$work/parts/part-$i.npz" ]] && parts+=("$work/parts/part-$i.npz")
  done
else
  shopt -s nullglob
  parts=("$work"/parts/part-*.npz)
fi
(( ${#parts[@]} > 0 )) || fail "no parts in $work/parts; run deploy/shard.sh for every shard first"
status=0
"${cli[@]}" eval merge "${parts[@]}" --real "$real" --features "${CF_FEATURES:-mnist}" \
  --save-stats "$work/fake-stats.npz" --json >"$work/fid.json.tmp" || status=$?
if ((status != 0)); then
  rm -f "$work/fid.json.tmp"
  exit "$status"
fi
mv "$work/fid.json.tmp" "$work/fid.json"
cat "$work/fid.json"
