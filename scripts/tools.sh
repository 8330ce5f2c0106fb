#!/usr/bin/env bash
# Installs the pinned Python tools the tests use (moto's DynamoDB server, cfn-lint, SAM CLI)
# into .venv, once per change of tests/requirements.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
stamp=".venv/.installed-$(sha256sum tests/requirements.txt | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "== installing test tools into .venv (tests/requirements.txt)"
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check -r tests/requirements.txt
  touch "$stamp"
fi
