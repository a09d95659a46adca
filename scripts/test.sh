#!/usr/bin/env bash
# The whole test suite: set up .venv if needed, lint, then run the core's tests, every
# plugin distribution's tests and the strict docs build (a test in tests/docs). Extra
# arguments go to pytest. Exits non-zero when a test fails or when no test ran.
set -euo pipefail
shopt -s nullglob
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup_env.sh"
cd "$root"
venv="${EMBER_VENV:-$root/.venv}"
"$venv/bin/ruff" check .
"$venv/bin/ruff" format --check .
paths=(tests)
for t in plugins/*/tests; do
  [ -d "$t" ] && paths+=("$t")
done
set +e
"$venv/bin/python" -m pytest -p no:cacheprovider "${paths[@]}" "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests: treating that as a failure" >&2
  exit 1
fi
exit "$status"
