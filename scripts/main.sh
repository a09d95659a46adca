#!/usr/bin/env bash
# The main job: set up .venv if needed, then train the digits classifier with ember's
# embedded local trackers (run journal + CSV) under ./ember_runs.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup_env.sh"
cd "$root"
exec "${EMBER_VENV:-$root/.venv}/bin/python" -m examples.digits.train "$@"
