#!/usr/bin/env bash
# Times the reference U-Net in this project (Benchmarks/UNetBench) and in PyTorch
# (../shared/bench/torch_reference_unet.py) side by side, and prints the ratios against the
# targets of issue 10, with the machine's FMA limit measured in the same run.
#
# Usage: scripts/bench_vs_torch.sh [steps] [python]
#   steps:  timed iterations per configuration (default 5; medians are reported)
#   python: a Python with torch (default: $TORCH_PYTHON, else ../venv-torch/bin/python, else python3)
# Configurations: 96x128 and 192x256, batch 8, 2 and 1 threads. The runs of one configuration
# are interleaved (ours, PyTorch) so that machine load affects both alike; quote ratios, not times.
#
# OpenBLAS core: our figures are measured with OPENBLAS_CORETYPE removed (the toolkit's automatic
# choice); when the environment sets OPENBLAS_CORETYPE, one more run per configuration keeps it
# (a user's value wins, README "Which OpenBLAS kernels") and is printed beside. Both cores are
# printed in the header.
#
# Printed per configuration: training step and inference times (ours, PyTorch, ratio), the
# convolution FLOP rate of a training step (3 x forward convolution FLOPs per second of the
# whole step, and per second spent inside the convolution kernels) against the FMA limit of
# the same thread count, and the peak resident memory of each process.
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
env_core="${OPENBLAS_CORETYPE:-}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

ours() {  # ours RES THREADS [keep-env] -> RESULT json
  local prefix=(env -u OPENBLAS_CORETYPE)
  [[ "${3:-}" == keep-env ]] && prefix=(env)
  "${prefix[@]}" "$bench" --res "$1" --batch 8 --threads "$2" --steps "$steps" --warmup 1 \
    2>"$work/ours.err" | sed -n 's/^RESULT //p'
}

echo "# $(date -u +%FT%TZ)  steps=$steps  load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) cores"
env -u OPENBLAS_CORETYPE "$bench" --fma-peak 1 2>"$work/peak.err" >/dev/null
echo "# ours:  $(sed -n 's/^# //p' "$work/peak.err" | head -1)"
if [[ -n "$env_core" ]]; then
  "$bench" --fma-peak 1 2>"$work/peak.err" >/dev/null
  echo "# env:   $(sed -n 's/^# //p' "$work/peak.err" | head -1)"
fi
echo "# torch: $("$python" -c 'import torch; print("PyTorch", torch.__version__, "CPU capability", torch.backends.cpu.get_cpu_capability())')"
declare -A peak
for t in 1 2; do
  peak[$t]=$(env -u OPENBLAS_CORETYPE "$bench" --fma-peak "$t" 2>/dev/null | sed -n 's/^RESULT //p' \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["fma_gflops"])')
  echo "# FMA limit (registers only, measured now): ${peak[$t]} GFLOP/s on $t thread(s)"
done

rows="$work/rows.jsonl"
for res in 96x128 192x256; do
  for threads in 2 1; do
    a=$(ours "$res" "$threads")
    theirs=$("$python" "$torch_script" --res "$res" --batch 8 --threads "$threads" --steps "$steps" \
      --warmup 2 --layout channels_last 2>/dev/null | sed -n 's/^RESULT //p')
    e=null
    if [[ -n "$env_core" ]]; then e=$(ours "$res" "$threads" keep-env); fi
    echo "{\"res\":\"$res\",\"threads\":$threads,\"peak\":${peak[$threads]},\"ours\":$a,\"torch\":$theirs,\"env\":$e}" >> "$rows"
  done
done

python3 - "$rows" "$env_core" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
env_core = sys.argv[2]
print()
print(f"{'input':<8} {'thr':>3} | {'ours ms':>8} {'torch ms':>8} {'train':>6} | {'ours inf':>8} {'torch inf':>9} {'infer':>6}"
      + (f" | {'env-core train':>14}" if env_core else ""))
for r in rows:
    o, t = r["ours"], r["torch"]
    line = (f"{r['res']:<8} {r['threads']:>3} | {o['train_s']*1e3:8.1f} {t['train_s']*1e3:8.1f} "
            f"{o['train_s']/t['train_s']:6.2f} | {o['infer_s']*1e3:8.1f} {t['infer_s']*1e3:9.1f} "
            f"{o['infer_s']/t['infer_s']:6.2f}")
    if env_core and r["env"]:
        line += f" | {r['env']['train_s']*1e3:7.1f} ({r['env']['blas_core']})"
    print(line)
print("# ratio = our time / PyTorch's (target <= 0.80)")
print()
print(f"{'input':<8} {'thr':>3} | {'FMA limit':>9} | {'step GF/s':>9} {'%':>5} | {'conv-kernel GF/s':>16} {'%':>5} | "
      f"{'ours RSS':>8} {'torch RSS':>9} (MiB)")
for r in rows:
    o, t, peak = r["ours"], r["torch"], r["peak"]
    print(f"{r['res']:<8} {r['threads']:>3} | {peak:9.1f} | {o['train_gflops']:9.1f} {100*o['train_gflops']/peak:5.1f} | "
          f"{o['train_conv_gflops']:16.1f} {100*o['train_conv_gflops']/peak:5.1f} | {o['maxrss_mib']:8.0f} {t['maxrss_mib']:9.0f}")
print("# step GF/s = 3 x forward convolution FLOPs / training step time; conv-kernel GF/s = the same")
print("# FLOPs / time inside the convolution kernels. Target: >= 60% of the FMA limit.")
print()
def verdict(ok): return "met" if ok else "MISSED"
train = all(r["ours"]["train_s"] <= 0.8 * r["torch"]["train_s"] for r in rows)
infer = all(r["ours"]["infer_s"] <= 0.8 * r["torch"]["infer_s"] for r in rows)
flops = all(r["ours"]["train_gflops"] >= 0.6 * r["peak"] for r in rows)
kernel = all(r["ours"]["train_conv_gflops"] >= 0.6 * r["peak"] for r in rows)
rss = all(r["ours"]["maxrss_mib"] <= r["torch"]["maxrss_mib"] for r in rows)
print(f"targets: training <= 0.8x {verdict(train)}; inference <= 0.8x {verdict(infer)}; "
      f"conv FLOP rate of the step >= 60% {verdict(flops)} (inside the kernels: {verdict(kernel)}); "
      f"peak RSS <= PyTorch's {verdict(rss)}")
PY
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"
