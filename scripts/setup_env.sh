#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment in .venv and install ember into it:
# torch first and pinned (a CPU build by default), then ember and every plugin under
# plugins/ in editable mode, with torch held at the installed version so nothing upgrades it.
#
#   EMBER_TORCH   pip requirement for torch (default "torch==2.13.0"); users with GPUs can
#                 set e.g. EMBER_TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu126"
#   EMBER_PYTHON  interpreter used to create the venv (default: python3)
#   EMBER_VENV    where the venv lives (default: .venv in the repository root)
set -euo pipefail
shopt -s nullglob
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${EMBER_VENV:-$root/.venv}"
python="${EMBER_PYTHON:-python3}"
torch_req="${EMBER_TORCH:-torch==2.13.0}"

"$python" - <<'PY' || { echo "ember needs Python >= 3.10 (set EMBER_PYTHON)" >&2; exit 1; }
import sys
sys.exit(0 if sys.version_info >= (3, 10) else 1)
PY

if [ ! -x "$venv/bin/python" ]; then
  echo "== creating virtual environment in $venv"
  "$python" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip --disable-pip-version-check)

# each plugin with its "test" extra (what its own tests need, e.g. a real `mlflow server`)
plugins=()
n_plugins=0
for p in "$root"/plugins/*/; do
  [ -f "$p/pyproject.toml" ] || continue
  n_plugins=$((n_plugins + 1))
  if grep -q '^test *=' "$p/pyproject.toml"; then
    plugins+=(-e "${p%/}[test]")
  else
    plugins+=(-e "$p")
  fi
done

# Skip the installs when nothing that decides them changed since the last successful run.
stamp="$venv/.ember-setup"
want="$( { echo "$torch_req"; cat "$root/pyproject.toml" "$root"/plugins/*/pyproject.toml; } | sha256sum | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi

echo "== installing $torch_req"
# shellcheck disable=SC2086  # EMBER_TORCH may carry pip options on purpose
"${pip[@]}" install --quiet $torch_req
torch_version="$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("torch"))')"
constraints="$(mktemp)"
trap 'rm -f "$constraints"' EXIT
echo "torch==$torch_version" > "$constraints"

echo "== installing ember (editable) and $n_plugins plugin(s), torch held at $torch_version"
"${pip[@]}" install --quiet -c "$constraints" -e "$root[test]" "${plugins[@]}"
echo "$want" > "$stamp"
