#!/bin/sh
# Creates the Python venv of the tests' peers outside the repository: PyPI safetensors, nibabel,
# numpy, cityscapesscripts, and torch (CPU). The tests find it through Tests/TestSupport/Peers.swift
# ($ATSO_PEER_PYTHON, then ../venv-peers, then ../venv-torch); .ci/run calls this script.
#
# Usage: scripts/setup_peers.sh [VENV_DIR]   (default: ../venv-peers next to the package)
# torch comes from a local CPU wheel when one exists (torch-*cpu*.whl in $ATSO_WHEELS, /opt/wheels,
# or $PIP_FIND_LINKS), else from PyPI; ATSO_PEERS_TORCH=0 leaves it out.
# A venv that already imports every peer is left as it is (a second run takes about a second).
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
venv=${1:-"$here/../venv-peers"}
modules="safetensors.numpy, nibabel, numpy, cityscapesscripts.evaluation.evalPixelLevelSemanticLabeling"
[ "${ATSO_PEERS_TORCH:-1}" = 0 ] || modules="$modules, torch"

if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import $modules" 2>/dev/null; then
  echo "peers ready in $venv"
  exit 0
fi

python3 -m venv "$venv"
pip="$venv/bin/python -m pip"
$pip install -q --timeout 60 --retries 2 safetensors nibabel numpy cityscapesscripts
if [ "${ATSO_PEERS_TORCH:-1}" != 0 ] && ! "$venv/bin/python" -c "import torch" 2>/dev/null; then
  wheel=""
  for dir in ${ATSO_WHEELS:-} /opt/wheels ${PIP_FIND_LINKS:-}; do
    [ -d "$dir" ] || continue
    found=$(ls "$dir"/torch-*cpu*.whl 2>/dev/null | sort | tail -n 1 || true)
    if [ -n "$found" ]; then wheel=$found; break; fi
  done
  if [ -n "$wheel" ]; then
    echo "torch from $wheel"
    $pip install -q "$wheel"
  else
    echo "torch from PyPI"
    $pip install -q --timeout 120 torch
  fi
fi
"$venv/bin/python" - <<EOF
import $modules
import importlib.metadata as m
names = ["safetensors", "nibabel", "numpy", "cityscapesScripts"] + (["torch"] if "torch" in "$modules" else [])
print("peers in $venv: " + ", ".join(f"{n} {m.version(n)}" for n in names))
EOF
