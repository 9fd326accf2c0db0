#!/usr/bin/env bash
# Times the reference U-Net in this project (Benchmarks/UNetBench) and in PyTorch
# (/work/shared/bench/torch_reference_unet.py) side by side, and prints the ratios.
#
# Usage: scripts/bench_vs_torch.sh [steps] [python]
#   steps:  timed iterations per configuration (default 5; medians are reported)
#   python: a Python with torch (default: $TORCH_PYTHON, else ../venv-torch/bin/python, else python3)
# Configurations: 96x128 and 192x256, batch 8, 1 and 2 threads. The two runs of one configuration
# are interleaved (ours, torch) so that machine load affects both alike; quote ratios, not times.
# OPENBLAS_CORETYPE is passed through and printed (it changes OpenBLAS's kernels, see README.md).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
steps="${1:-5}"
python="${2:-${TORCH_PYTHON:-}}"
if [[ -z "$python" ]]; then
  if [[ -x "$root/../venv-torch/bin/python" ]]; then python="$root/../venv-torch/bin/python"; else python=python3; fi
fi
torch_script="${TORCH_SCRIPT:-$root/../shared/bench/torch_reference_unet.py}"
[[ -f "$torch_script" ]] || { echo "missing $torch_script" >&2; exit 1; }
"$python" -c "import torch" 2>/dev/null || { echo "$python has no torch" >&2; exit 1; }

(cd "$root/Benchmarks" && swift build -c release --product UNetBench >&2)
bench="$root/Benchmarks/.build/release/UNetBench"

echo "# OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-auto}  steps=$steps  $(date -u +%FT%TZ)  load: $(cut -d' ' -f1-3 /proc/loadavg)"
printf "%-8s %3s | %10s %10s %7s | %10s %10s %7s | %8s %8s\n" res thr "ours ms" "torch ms" "ratio" \
  "ours inf" "torch inf" "ratio" "ours GF" "torch GF"
for res in 96x128 192x256; do
  for threads in 2 1; do
    ours=$("$bench" --res "$res" --batch 8 --threads "$threads" --steps "$steps" --warmup 1 2>/dev/null \
      | sed -n 's/^RESULT //p')
    theirs=$("$python" "$torch_script" --res "$res" --batch 8 --threads "$threads" --steps "$steps" \
      --warmup 2 --layout channels_last 2>/dev/null | sed -n 's/^RESULT //p')
    python3 - "$res" "$threads" "$ours" "$theirs" <<'PY'
import json, sys
res, threads, ours, theirs = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), json.loads(sys.argv[4])
print(f"{res:<8} {threads:>3} | {ours['train_s']*1e3:10.1f} {theirs['train_s']*1e3:10.1f} "
      f"{ours['train_s']/theirs['train_s']:7.2f} | {ours['infer_s']*1e3:10.1f} {theirs['infer_s']*1e3:10.1f} "
      f"{ours['infer_s']/theirs['infer_s']:7.2f} | {ours['train_gflops']:8.1f} {theirs['train_gflops']:8.1f}")
PY
  done
done
echo "# ratio = our time / PyTorch time (lower is better); GF = training GFLOP/s (3 x forward conv FLOPs)"
