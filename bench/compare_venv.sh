#!/usr/bin/env bash
# Builds .venv-compare: an overlay of the project's .venv (it sees torch and bml through a
# .pth file) with MLflow and TensorBoard installed on top, for bench/store_overhead.py's
# side-by-side comparison only. The project .venv is left exactly as `make install` made it.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
test -x .venv/bin/python || { echo "run make install first" >&2; exit 1; }
test -x .venv-compare/bin/python || "$PYTHON" -m venv .venv-compare
purelib() { "$1" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'; }
echo "import site; site.addsitedir('$(purelib .venv/bin/python)')" > "$(purelib .venv-compare/bin/python)/zz_bml_venv.pth"
.venv-compare/bin/python -m pip install -q -r bench/requirements-compare.txt
.venv-compare/bin/python -c "import mlflow, tensorboard, bml_core; print('compare venv ready: mlflow', mlflow.__version__, 'tensorboard', tensorboard.__version__)"
