#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs the pinned Python test tools into .venv
# (once), then checks formatting, lints (clippy -D warnings), checks the SAM template (cfn-lint,
# sam validate, the checkov IaC scanner on the expanded template), and runs
# every test: unit tests, the storage conformance suite on both stores (DynamoDB through a moto
# server the tests start), the HTTP API, the sample events and the template/route checks; then
# fuzzes the contract (scripts/schemathesis.sh: schemathesis, every check, against athena-local,
# reusing the debug build; any failure fails the script); then builds every Lambda function for
# arm64 in release mode with cargo-lambda, as `sam build` would.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/tools.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
if [ -f template.yaml ]; then
  echo "== cfn-lint / sam validate"
  .venv/bin/cfn-lint template.yaml
  AWS_DEFAULT_REGION=us-east-1 AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test SAM_CLI_TELEMETRY=0 \
    .venv/bin/sam validate --lint -t template.yaml
  AWS_DEFAULT_REGION=us-east-1 AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test SAM_CLI_TELEMETRY=0 \
    .venv/bin/sam validate --language-extensions -t template.yaml
  echo "== checkov (the template as deployed, dev and prod; skips and their reasons: infra/checkov.yaml)"
  scan="$(mktemp -d)"
  trap 'rm -rf "$scan"' EXIT
  for stage in dev prod; do
    .venv/bin/python scripts/expand_template.py --stage "$stage" > "$scan/template-$stage.json"
  done
  .venv-scan/bin/checkov --config-file infra/checkov.yaml -d "$scan"
fi
echo "== cargo test"
MOTO_PYTHON="$PWD/.venv/bin/python" cargo test --workspace --locked
echo "== schemathesis (docs/openapi.yaml against athena-local)"
# Bounded: a fixed seed and 25 examples per operation (~30 s on 2 cores); a hung run is cut at 5 min.
timeout 300 scripts/schemathesis.sh
echo "== cargo lambda build --release --arm64 (every function)"
PATH="$PWD/.venv/bin:$PATH" cargo lambda build --release --arm64 --locked \
  -p conversations -p messages -p chat -p analytics -p export -p housekeeping -p streams
ls -l target/lambda/*/bootstrap
