#!/usr/bin/env bash
# Athena's benchmark suite (issue #8): builds the release binaries and the bench crate, runs every
# benchmark side by side in one run and rewrites the results table in docs/performance.md
# (between the bench:results markers). Nothing here asserts a timing.
#
#   scripts/bench.sh              # full run (~5 min after the build): cold start, round trips,
#                                 # relay, footprint, load (wrk) on the embedded store and moto
#   scripts/bench.sh --quick      # fewer runs, 3 s load points
#   scripts/bench.sh --no-moto    # skip the DynamoDB (moto) figures
#   scripts/bench.sh --arm64      # also build the arm64 bootstraps (cargo lambda) for the sizes
#
# BENCH_DOC=path rewrites another copy of the document instead (to try the script out).
# Needs: wrk (apt-get install -y wrk), .venv with moto (scripts/tools.sh) unless --no-moto,
# cargo-lambda + ziglang in .venv for --arm64.
set -euo pipefail
cd "$(dirname "$0")/.."

arm64=0
args=()
for a in "$@"; do
  case "$a" in
    --arm64) arm64=1 ;;
    --quick) args+=(--cold-runs 5 --turns 200 --load-secs 3) ;;
    --no-moto) args+=(--no-moto) ;;
    *) echo "usage: scripts/bench.sh [--quick] [--no-moto] [--arm64]" >&2; exit 2 ;;
  esac
done

command -v wrk >/dev/null || { echo "bench.sh: wrk is missing (apt-get install -y wrk)" >&2; exit 1; }

cargo build --release --locked \
  -p conversations -p messages -p chat -p analytics -p athena-local -p athena-bench

if [ "$arm64" = 1 ]; then
  PATH="$PWD/.venv/bin:$PATH" cargo lambda build --release --arm64 --locked \
    -p conversations -p messages -p chat -p analytics -p export -p housekeeping
fi

target/release/athena-bench suite --root . --doc "${BENCH_DOC:-docs/performance.md}" "${args[@]}"
