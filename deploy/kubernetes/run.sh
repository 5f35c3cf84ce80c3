#!/usr/bin/env bash
# Run the sharded job and then the merge on the current kubectl context (after the image is built and
# pushed where the cluster pulls from, and the volume holds the model and the reference statistics: see
# README.md). Prints the merge's JSON line.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

kubectl apply -f "$here/volume.yaml"
kubectl delete job causalfusion-shards causalfusion-merge --ignore-not-found
kubectl apply -f "$here/shards-job.yaml"
# Kubernetes has no dependency between Jobs: wait until the shards' Job is Complete (or Failed, once its
# retries are spent), then start the merge.
until_done() {
  local job=$1 state
  while :; do
    state=$(kubectl get "job/$job" -o jsonpath='{.status.conditions[?(@.status=="True")].type}')
    case " $state " in
      *" Complete "*) return 0 ;;
      *" Failed "*) echo "run.sh: job/$job failed; see kubectl logs -l job-name=$job" >&2; return 1 ;;
    esac
    sleep 10
  done
}
until_done causalfusion-shards
kubectl apply -f "$here/merge-job.yaml"
until_done causalfusion-merge
kubectl logs "job/causalfusion-merge" | tail -n 1
