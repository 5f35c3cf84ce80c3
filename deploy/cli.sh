# Sourced by shard.sh and merge.sh: the causalfusion command to run, as the array `cli`:
# $CF_CLI if set (e.g. "node /app/apps/cli/dist/cli.js"), else `causalfusion` on the PATH, else this
# repository's built CLI.
if [[ -n "${CF_CLI:-}" ]]; then
  read -r -a cli <<<"$CF_CLI"
elif command -v causalfusion >/dev/null 2>&1; then
  cli=(causalfusion)
else
  cli=(node "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../apps/cli/dist/cli.js")
fi
