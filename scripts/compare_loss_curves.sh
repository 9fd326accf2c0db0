#!/usr/bin/env bash
# Issue 10, "Verified": the same short CamVid training with two builds of atso-transfer (e.g. the
# commits before and after a speed change), per-step losses compared, then the AFTER build's
# reproducibility: twice with the same seed and --threads 1 (checkpoint and losses must be
# byte-identical), and once with --threads 2.
#
#   scripts/compare_loss_curves.sh BEFORE_BIN AFTER_BIN [STEPS=80] [OUT=/tmp/compare-loss-curves]
#
# Reference U-Net (widths 16,32,64,128), 96x128, batch 8, seed 0, CamVid daylight sequences
# (README "Train on CamVid"); $CAMVID overrides ../shared/data/camvid. OPENBLAS_CORETYPE is
# removed for every run (OpenBLAS's or the package's automatic core). Losses are the
# 4-decimal ones train prints per step (--log-every 0); the final weights are compared too.
# Exit status 1 when a reproducibility check fails or the curves differ by more than
# $TOLERANCE (relative, default 0.01) at some step.
set -euo pipefail
[ $# -ge 2 ] || { sed -n '2,15p' "$0" >&2; exit 2; }
before=$1 after=$2 steps=${3:-80} out=${4:-/tmp/compare-loss-curves}
tolerance=${TOLERANCE:-0.01}
root=$(cd "$(dirname "$0")/.." && pwd)
D=${CAMVID:-$root/../shared/data/camvid}
[ -f "$D/train.txt" ] || { echo "no CamVid at $D (set CAMVID=DIR)" >&2; exit 2; }
rm -rf "$out" && mkdir -p "$out"

run() { # BIN THREADS NAME
  echo "== $3: $1 --threads $2" >&2
  env -u OPENBLAS_CORETYPE "$1" train \
    --dataset "camvid:$D/train.txt?include=0006R0,0016E5" \
    --dataset "camvid:$D/val.txt?include=0006R0,0016E5" \
    --classes camvid-11 --model unet --widths 16,32,64,128 --size 96x128 --batch 8 \
    --iterations "$steps" --learning-rate 0.01 --momentum 0.9 --weight-decay 5e-4 \
    --initialization pytorch --seed 0 --threads "$2" --log-every 0 \
    --checkpoint-every "$steps" --output "$out/$3" 2>"$out/$3.log" >/dev/null
  sed -n 's|.*step \([0-9]*\)/[0-9]*  loss \([0-9.naif-]*\) .*|\1 \2|p' "$out/$3.log" >"$out/$3.loss"
  [ "$(wc -l <"$out/$3.loss")" -eq "$steps" ] || { echo "$3: not $steps loss lines" >&2; exit 1; }
}

compare() { # NAME_A NAME_B: per-step table, then one summary line
  join "$out/$1.loss" "$out/$2.loss" | awk -v a="$1" -v b="$2" -v tol="$tolerance" '
    BEGIN { printf "%5s %9s %9s %9s %9s\n", "step", a, b, "abs", "rel" }
    { d = $2 - $3; if (d < 0) d = -d; r = d / ($2 > 0 ? $2 : 1)
      printf "%5d %9.4f %9.4f %9.4f %9.2e\n", $1, $2, $3, d, r
      if (d > ma) { ma = d; sa = $1 } if (r > mr) mr = r
      if (d > 0 && first == "") first = $1 }
    END { printf "%s vs %s: %d steps, max |diff| %.4f (step %d), max rel %.2e, first differing step %s%s\n",
            a, b, NR, ma, sa, mr, (first == "" ? "none" : first), (mr > tol ? ", ABOVE TOLERANCE" : "")
          exit (mr > tol) }'
}

weights() { # NAME_A NAME_B: max |w_a - w_b| over the checkpoints' float tensors (stdlib oracle)
  python3 - "$out/$1/checkpoint.safetensors" "$out/$2/checkpoint.safetensors" <<'EOF'
import json, struct, sys
from array import array
def load(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    head, body = json.loads(raw[8:8 + n]), raw[8 + n:]
    return {k: array("f", body[v["data_offsets"][0]:v["data_offsets"][1]])
            for k, v in head.items() if k != "__metadata__" and v["dtype"] == "F32"}
a, b = load(sys.argv[1]), load(sys.argv[2])
diff = max(abs(x - y) for k in a for x, y in zip(a[k], b[k]))
scale = max(abs(x) for k in a for x in a[k])
print(f"final weights: {len(a)} tensors, max |diff| {diff:.3e}, max |w| {scale:.3e}")
EOF
}

env -u OPENBLAS_CORETYPE "$after" doctor || true
grep -m1 'model name' /proc/cpuinfo || true
run "$before" 1 before
run "$after" 1 after
run "$after" 1 after-again
run "$after" 2 after-2threads
status=0
compare before after | tee "$out/before-vs-after.txt" || status=1
weights before after
for other in after-again after-2threads; do
  if cmp -s "$out/after/checkpoint.safetensors" "$out/$other/checkpoint.safetensors" &&
     cmp -s "$out/after.loss" "$out/$other.loss"; then
    echo "after vs $other: checkpoint and losses byte-identical"
  else
    echo "after vs $other: DIFFERENT"; compare after "$other" | tail -1 || true; weights after "$other"
    [ "$other" = after-again ] && status=1
  fi
done
exit $status
