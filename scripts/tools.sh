#!/usr/bin/env bash
# Installs what the tests and builds use: the pinned Python tools (moto's DynamoDB server, boto3,
# cfn-lint, SAM CLI, cargo-lambda and zig for the arm64 Lambda build) into .venv, once per change
# of tests/requirements.txt; the IaC scanner (checkov) into .venv-scan; the AI SDK clients (npm); Debian's Chromium and PostgreSQL server; the Rust arm64 target.
set -euo pipefail
cd "$(dirname "$0")/.."
stamp=".venv/.installed-$(sha256sum tests/requirements.txt | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "== installing test tools into .venv (tests/requirements.txt)"
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check -r tests/requirements.txt
  touch "$stamp"
fi
# The IaC scanner (checkov) in a virtualenv of its own: its pins conflict with the tools above
# (tests/requirements-scan.txt says which).
scanstamp=".venv-scan/.installed-$(sha256sum tests/requirements-scan.txt | cut -c1-16)"
if [ ! -f "$scanstamp" ]; then
  echo "== installing the IaC scanner into .venv-scan (tests/requirements-scan.txt)"
  python3 -m venv .venv-scan
  .venv-scan/bin/pip install --quiet --disable-pip-version-check -r tests/requirements-scan.txt
  touch "$scanstamp"
fi
# The AI SDK client versions the stream tests read with (tests/js/package-lock.json).
jsstamp="tests/js/node_modules/.installed-$(sha256sum tests/js/package-lock.json | cut -c1-16)"
if [ ! -f "$jsstamp" ]; then
  echo "== installing the AI SDK test clients (tests/js)"
  (cd tests/js && npm ci --no-audit --no-fund --loglevel=error)
  touch "$jsstamp"
fi
# Debian's Chromium, for the dashboard test (a real headless browser).
if ! command -v chromium >/dev/null 2>&1; then
  echo "== installing chromium (apt)"
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
# Debian's PostgreSQL server binaries, for athena-migrate's tests (tests/src/postgres.rs starts a
# throwaway cluster from /usr/lib/postgresql/<n>/bin; a missing server fails those tests).
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  echo "== installing postgresql (apt)"
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >/dev/null
fi
# The Lambda functions are built for Graviton (arm64) with cargo-lambda and zig as the linker.
if command -v rustup >/dev/null 2>&1 && ! rustup target list --installed | grep -qx aarch64-unknown-linux-gnu; then
  echo "== adding the Rust target aarch64-unknown-linux-gnu"
  rustup target add aarch64-unknown-linux-gnu
fi
