#!/usr/bin/env bash
# Installs dynalite 4.0.0 (a DynamoDB-API server in Node.js on LevelDB; no transactions, no
# streams) for `athena-bench search --dynalite`: a second engine for the DynamoDB search
# latency, next to moto. A bench tool, not part of CI. Usage:
#   bench/dynalite.sh [DIR]        # default DIR: target/dynalite (not committed)
# then: cargo run --release -p athena-bench -- search --dynalite DIR/node_modules/dynalite/cli.js
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${1:-target/dynalite}"
mkdir -p "$dir"
npm install --prefix "$dir" --no-audit --no-fund dynalite@4.0.0
echo "dynalite: $dir/node_modules/dynalite/cli.js"
