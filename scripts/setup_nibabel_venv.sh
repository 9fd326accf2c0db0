#!/bin/sh
# Creates a Python venv with nibabel outside the repository, for the Medical tests' oracle.
# Usage: scripts/setup_nibabel_venv.sh [VENV_DIR]   (default: ../venv-nib next to the package)
set -e
here=$(cd "$(dirname "$0")/.." && pwd)
venv=${1:-"$here/../venv-nib"}
python3 -m venv --system-site-packages "$venv"
"$venv/bin/pip" install -q nibabel numpy
"$venv/bin/python" -c "import nibabel; print('nibabel', nibabel.__version__, 'in $venv')"
