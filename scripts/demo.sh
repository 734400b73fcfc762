#!/usr/bin/env bash
# Sets up .venv (scripts/setup.sh) and runs the demo. Extra arguments go to `greenops demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/greenops info
.venv/bin/greenops demo "$@"
