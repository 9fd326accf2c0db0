#!/usr/bin/env bash
# Issue 10, "Verified": the same short CamVid training with two builds of atso-transfer (e.g. the
# commits before and after a speed change), per-step losses compared, then the AFTER build's
# reproducibility: twice with the same seed and --threads 1 (checkpoint and losses must be
# byte-identical), and once with --threads 2. The yardstick of "float tolerance": the AFTER build
# once more with only the summation order changed ($REFERENCE_ENV, default ATSO_KERNEL_ISA=avx2,
# the AVX2 kernels instead of AVX-512); the weights after one step are compared as well.
#
#   scripts/compare_loss_curves.sh BEFORE_BIN AFTER_BIN [STEPS=80] [OUT=/tmp/compare-loss-curves]
#
# Reference U-Net (widths 16,32,64,128), 96x128, batch 8, seed 0, CamVid daylight sequences
# (README "Train on CamVid"); $CAMVID overrides ../shared/data/camvid. OPENBLAS_CORETYPE is
# removed for every run (OpenBLAS's or the package's automatic core). Losses are the
# 4-decimal ones train prints per step (--log-every 0); the final weights are compared too.
# Exit status 1 when a same-seed same-threads rerun differs, or when the largest relative
# difference of BEFORE and AFTER exceeds $FACTOR (default 2) times the yardstick's.
set -euo pipefail
[ $# -ge 2 ] || { sed -n '2,15p' "$0" >&2; exit 2; }
before=$1 after=$2 steps=${3:-80} out=${4:-/tmp/compare-loss-curves}
factor=${FACTOR:-2} reference_env=${REFERENCE_ENV:-ATSO_KERNEL_ISA=avx2}
root=$(cd "$(dirname "$0")/.." && pwd)
D=${CAMVID:-$root/../shared/data/camvid}
[ -f "$D/train.txt" ] || { echo "no CamVid at $D (set CAMVID=DIR)" >&2; exit 2; }
rm -rf "$out" && mkdir -p "$out"

run() { # BIN THREADS NAME [STEPS [ENV]]
  local n=${4:-$steps}
  echo "== $3: ${5:-} $1 --threads $2, $n steps" >&2
  env -u OPENBLAS_CORETYPE ${5:-} "$1" train \
    --dataset "camvid:$D/train.txt?include=0006R0,0016E5" \
    --dataset "camvid:$D/val.txt?include=0006R0,0016E5" \
    --classes camvid-11 --model unet --widths 16,32,64,128 --size 96x128 --batch 8 \
    --iterations "$n" --learning-rate 0.01 --momentum 0.9 --weight-decay 5e-4 \
    --initialization pytorch --seed 0 --threads "$2" --log-every 0 \
    --checkpoint-every "$n" --output "$out/$3" 2>"$out/$3.log" >/dev/null
  sed -n 's|.*step \([0-9]*\)/[0-9]*  loss \([0-9.naif-]*\) .*|\1 \2|p' "$out/$3.log" >"$out/$3.loss"
  [ "$(wc -l <"$out/$3.loss")" -eq "$n" ] || { echo "$3: not $n loss lines" >&2; exit 1; }
}

compare() { # NAME_A NAME_B: per-step table, then one summary line; prints the max rel to $out/$1-$2.max
  join "$out/$1.loss" "$out/$2.loss" | awk -v a="$1" -v b="$2" -v max="$out/$1-$2.max" '
    BEGIN { printf "%5s %9s %9s %9s %9s\n", "step", a, b, "abs", "rel" }
    { d = $2 - $3; if (d < 0) d = -d; r = d / ($2 > 0 ? $2 : 1)
      printf "%5d %9.4f %9.4f %9.4f %9.2e\n", $1, $2, $3, d, r
      if (d > ma) { ma = d; sa = $1 } if (r > mr) mr = r
      if (d > 0 && first == "") first = $1 }
    END { printf "%s vs %s: %d steps, max |diff| %.4f%s, max rel %.2e, first differing step %s\n",
            a, b, NR, ma, (sa ? " (step " sa ")" : ""), mr, (first == "" ? "none" : first)
          printf "%.6g\n", mr > max }'
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
print(f"{sys.argv[1].split('/')[-2]} vs {sys.argv[2].split('/')[-2]}: {len(a)} tensors, "
      f"max |diff| {diff:.3e}, max |w| {scale:.3e}")
EOF
}

env -u OPENBLAS_CORETYPE "$after" doctor || true
grep -m1 'model name' /proc/cpuinfo || true
run "$before" 1 before
run "$after" 1 after
run "$after" 1 after-again
run "$after" 2 after-2threads
run "$after" 1 yardstick "$steps" "$reference_env"
run "$before" 1 before-1step 1
run "$after" 1 after-1step 1
run "$after" 1 yardstick-1step 1 "$reference_env"
status=0
compare before after >"$out/before-vs-after.txt"; cat "$out/before-vs-after.txt"
compare after yardstick >"$out/after-vs-yardstick.txt"; tail -1 "$out/after-vs-yardstick.txt"
weights before-1step after-1step
weights after-1step yardstick-1step
weights before after
if awk -v x="$(cat "$out/before-after.max")" -v y="$(cat "$out/after-yardstick.max")" -v f="$factor" \
     'BEGIN { exit !(x <= f * y) }'; then
  echo "before vs after: within $factor x the yardstick ($reference_env)"
else
  echo "before vs after: MORE than $factor x the yardstick ($reference_env)"; status=1
fi
for other in after-again after-2threads; do
  if cmp -s "$out/after/checkpoint.safetensors" "$out/$other/checkpoint.safetensors" &&
     cmp -s "$out/after/checkpoint.safetensors.json" "$out/$other/checkpoint.safetensors.json" &&
     cmp -s "$out/after.loss" "$out/$other.loss"; then
    echo "after vs $other: checkpoint (weights, optimizer, random state) and losses byte-identical"
  else
    echo "after vs $other: DIFFERENT"; compare after "$other" | tail -1; weights after "$other"
    [ "$other" = after-again ] && status=1
  fi
done
exit $status
