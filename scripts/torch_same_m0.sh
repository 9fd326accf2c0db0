#!/bin/bash
# The PyTorch yardstick from the same M0: exports the source model of a run of
# scripts/camvid_recipe.sh (its `sourceModel`) to PyTorch, runs shared/bench/torch_atso_adabn.py
# (ATSO with AdaBN, the reference recipe of shared/bench/FIDELITY.md) from it, and prints each
# generation side by side with the run's own scores (scripts/compare_same_m0.py).
#
# Why: M0's seed moves the dusk scores by up to 6 points (FIDELITY.md), so comparing a run with
# the PyTorch figures of another M0 measures the seeds, not the engines. From one M0, the two
# engines differ only in what the students do: the fold split (PyTorch: torch.randperm with
# --split-seed 0; ours: the run seed), the sampling and augmentation draws, and float order.
#
# Usage: scripts/torch_same_m0.sh RUN OUT [GENERATIONS]
#   RUN  a finished run directory of camvid_recipe.sh (fine-adabn: ATSO with AdaBN)
#   OUT  folder for the PyTorch run (m0.pt, atso.json, models/, labels/, torch.log)
# Env: BIN (atso-transfer, default .build/release/atso-transfer), DATA (../shared/data/camvid),
#   PYTHON (a Python with torch and safetensors; default ../venv-peers/bin/python, which
#   scripts/setup_peers.sh makes), THREADS (torch threads, default 2), SEED (student seed, 1).
# Time: 2T+1 students of 750 steps, about 3.5 min each on one Zen 5 core (PyTorch 2.13).
set -euo pipefail
RUN=${1:?usage: torch_same_m0.sh RUN OUT [GENERATIONS]}
OUT=${2:?usage: torch_same_m0.sh RUN OUT [GENERATIONS]}
GENERATIONS=${3:-3}
HERE=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BIN:-$HERE/.build/release/atso-transfer}
DATA=$(cd "${DATA:-$HERE/../shared/data/camvid}" && pwd)
PYTHON=${PYTHON:-$HERE/../venv-peers/bin/python}
BENCH=${BENCH:-$HERE/../shared/bench}
THREADS=${THREADS:-2}
SEED=${SEED:-1}
[ -f "$RUN/configuration.json" ] || { echo "$RUN: not a run directory (no configuration.json)" >&2; exit 2; }
"$PYTHON" -c "import torch, safetensors" 2>/dev/null \
  || { echo "$PYTHON lacks torch or safetensors (scripts/setup_peers.sh makes ../venv-peers)" >&2; exit 2; }
M0=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("sourceModel") or "")' \
  "$RUN/configuration.json")
[ -n "$M0" ] && [ -f "$M0" ] || { echo "$RUN/configuration.json: no sourceModel checkpoint ('$M0')" >&2; exit 2; }
mkdir -p "$OUT"
"$BIN" export "$M0" "$OUT/m0.safetensors" >&2
"$PYTHON" -c 'import sys, torch, safetensors.torch as st; torch.save(st.load_file(sys.argv[1]), sys.argv[2])' \
  "$OUT/m0.safetensors" "$OUT/m0.pt"
# E = R = the 62 dusk frames (as camvid_recipe.sh scores); the reference wants an E-day list too.
if [ ! -f "$OUT/atso.json" ]; then
  "$PYTHON" "$BENCH/torch_atso_adabn.py" --data "$DATA" --test-list "$DATA/train.txt" \
    --eval E-dusk:0001TP --eval E-day:0001TP --m0 "$OUT/m0.pt" --out "$OUT" \
    --schedules atso --generations "$GENERATIONS" --threads "$THREADS" --seed "$SEED" \
    > "$OUT/torch.log" 2>&1 || { tail -5 "$OUT/torch.log" >&2; exit 1; }
fi
python3 "$HERE/scripts/compare_same_m0.py" "$RUN" "$OUT/atso.json"
