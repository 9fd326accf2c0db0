#!/usr/bin/env bash
# Evaluation speed: cityscapesscripts vs `atso-transfer evaluate` vs the decode floor, on the
# same N generated 1024x2048 Cityscapes labelId pairs (ground truth and a noisy prediction).
#
#   scripts/bench_evaluate.sh [N=200] [WORKDIR=/tmp/atso-evalbench]
#
# KIND chooses the predictions (default noisy):
#   noisy       piecewise-constant scenes (64x64 blocks) predicted with 20 % of their 8x8 blocks
#               replaced by a random class: about 460 000 (truth, prediction) pair changes a
#               frame, 20 times a real frame's; counting the pairs is then about 80 % of what
#               evaluate does beyond decoding (perf, one thread: 1.0 of 1.24 ms a frame).
#   boundaries  the real Cityscapes frame of ../shared/data/cityscapes-mini (its labelIds, scaled
#               up to 2048x1024 and moved by a random offset in each frame) predicted 3 columns
#               and 2 rows off: errors along every boundary, about 20 000 pair changes a frame.
#               Needs ../shared/data (falls back to noisy when it is absent).
#
# `atso-transfer evaluate` and the floor (Benchmarks' DecodeFloor: only decoding the same 400
# files on 2 threads through the same reader) are both timed as whole processes, from the
# shell, $RUNS times each (default 5), alternating, after a warm-up run of each: the medians
# and the median of the run-by-run ratios are printed, with the CPU and the vector level of the
# pair counting (`atso-transfer doctor`). The machine is shared: quote the ratio.
#
# Needs python3 with pip (a venv with cityscapesscripts and Pillow is made in $VENV, default
# ../venv-cs next to the package). cityscapesscripts' evaluation is timed on at most
# $CS_FRAMES frames (default 20) and reported per frame, because the PyPI package ships without
# its compiled fast path (the sdist lacks addToConfusionMatrix.pyx), so it runs its NumPy
# loop. Prints the three figures and the ratios.
set -euo pipefail
N=${1:-200}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
KIND=${KIND:-noisy}
FRAME=$ROOT/../shared/data/cityscapes-mini/gtFine/val/frankfurt/frankfurt_000000_000294_gtFine_labelIds.png
case $KIND in
  noisy) ;;
  boundaries) [ -f "$FRAME" ] || { echo "no $FRAME: KIND=noisy" >&2; KIND=noisy; } ;;
  *) echo "KIND=$KIND: expected noisy or boundaries" >&2; exit 2 ;;
esac
WORK=${2:-/tmp/atso-evalbench$([ "$KIND" = noisy ] || echo "-$KIND")}
VENV=${VENV:-$ROOT/../venv-cs}
CS_FRAMES=${CS_FRAMES:-20}
RUNS=${RUNS:-5}

if [ ! -x "$VENV/bin/python" ]; then python3 -m venv "$VENV"; fi
"$VENV/bin/python" -c "import cityscapesscripts, PIL" 2>/dev/null ||
  "$VENV/bin/pip" install -q cityscapesscripts pillow

mkdir -p "$WORK"
"$VENV/bin/python" - "$N" "$WORK" "$KIND" "$FRAME" <<'PY'
import os, sys, numpy as np
from PIL import Image
n, work, kind, frame = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
if kind == "boundaries":
    real = np.array(Image.open(frame)).astype(np.uint8)
    real = np.kron(real, np.ones((1024 // real.shape[0], 2048 // real.shape[1]), np.uint8))
gt_dir = os.path.join(work, "gtFine", "val", "bench"); os.makedirs(gt_dir, exist_ok=True)
pred_dir = os.path.join(work, "results"); os.makedirs(pred_dir, exist_ok=True)
ids = [0, 1, 4, 5, 6, 7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33]
rng = np.random.default_rng(0)
pairs = []
for i in range(n):
    stem = f"bench_000000_{i:06d}"
    gt_path = os.path.join(gt_dir, stem + "_gtFine_labelIds.png")
    pred_path = os.path.join(pred_dir, stem + "_pred.png")
    pairs.append(f"{pred_path} {gt_path}")
    if os.path.exists(gt_path) and os.path.exists(pred_path):
        continue
    if kind == "boundaries":
        gt = np.roll(real, (int(rng.integers(1024)), int(rng.integers(2048))), axis=(0, 1))
        pred = np.roll(gt, (2, 3), axis=(0, 1))
    else:
        # Piecewise-constant scenes (64x64 blocks, upsampled) compress like real label maps.
        coarse = rng.choice(ids, size=(16, 32)).astype(np.uint8)
        gt = np.kron(coarse, np.ones((64, 64), np.uint8))
        pred = gt.copy()
        noise = np.kron(rng.random((128, 256)) < 0.2, np.ones((8, 8), bool))
        pred[noise] = rng.choice(ids, size=int(noise.sum())).astype(np.uint8)
    Image.fromarray(gt).save(gt_path)
    Image.fromarray(pred).save(pred_path)
open(os.path.join(work, "pairs.txt"), "w").write("\n".join(pairs) + "\n")
PY

cd "$ROOT"
swift build -c release --product atso-transfer >/dev/null
(cd Benchmarks && swift build -c release --product DecodeFloor >/dev/null)
BIN=$(swift build -c release --show-bin-path)
FLOORBIN=$(cd Benchmarks && swift build -c release --show-bin-path)

now() { date +%s.%N; }
# Warm the page cache once, so every contender reads from memory.
cat "$WORK"/gtFine/val/bench/*.png "$WORK"/results/*.png > /dev/null
cut -d' ' -f1,2 "$WORK/pairs.txt" | tr ' ' '\n' > "$WORK/files.txt"

evaluate() {
  "$BIN/atso-transfer" evaluate --pairs "$WORK/pairs.txt" --prediction-classes cityscapes-34 \
    --truth-classes cityscapes-34 --at cityscapes-19 --json "$WORK/ours.json" > "$WORK/ours.txt"
}
decode_floor() { "$FLOORBIN/DecodeFloor" --threads 2 --list "$WORK/files.txt" > /dev/null; }
# Whole-process wall seconds of "$@".
timed() { local t0 t1; t0=$(now); "$@"; t1=$(now); echo "$t1 - $t0" | bc -l; }

evaluate; decode_floor  # warm-up
ours_runs=(); floor_runs=()
for _ in $(seq "$RUNS"); do
  ours_runs+=("$(timed evaluate)")
  floor_runs+=("$(timed decode_floor)")
done
read -r ours floor ratio < <("$VENV/bin/python" - "${ours_runs[*]}" "${floor_runs[*]}" <<'PY'
import statistics, sys
ours = [float(x) for x in sys.argv[1].split()]
floor = [float(x) for x in sys.argv[2].split()]
print(statistics.median(ours), statistics.median(floor),
      statistics.median(a / b for a, b in zip(ours, floor)))
PY
)

# cityscapesscripts on the first CS_FRAMES frames, through its own evaluateImgLists (pixel-level
# class and category IoU; iIoU off: its instance path calls numpy.in1d, gone in numpy 2.x).
frames=$(( CS_FRAMES < N ? CS_FRAMES : N ))
head -n "$frames" "$WORK/pairs.txt" > "$WORK/cs-pairs.txt"
cs=$("$VENV/bin/python" - "$WORK/cs-pairs.txt" <<'PY'
import sys, time
from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as e
pairs = [line.split() for line in open(sys.argv[1]) if line.strip()]
args = e.args
args.evalInstLevelScore = False
args.quiet = True
args.JSONOutput = False
start = time.time()
e.evaluateImgLists([p for p, _ in pairs], [g for _, g in pairs], args)
print(time.time() - start)
PY
)

echo "$("$BIN/atso-transfer" doctor | grep -E '^(CPU|pair counting) ')"
awk -v n="$N" -v kind="$KIND" -v ours="$ours" -v floor="$floor" -v ratio="$ratio" -v cs="$cs" \
  -v f="$frames" -v runs="$RUNS" 'BEGIN {
  printf "frames: %d pairs of 1024x2048 labelIds PNGs (predictions: %s); medians of %d runs\n", n, kind, runs
  printf "cityscapesscripts (PyPI, no C module, %d fr): %8.1f ms/frame\n", f, 1000 * cs / f
  printf "atso-transfer evaluate (2 threads, process): %7.2f ms/frame  (%.3f s)\n", 1000 * ours / n, ours
  printf "decode floor (2 threads, process):          %7.2f ms/frame  (%.3f s)\n", 1000 * floor / n, floor
  printf "ratios: cityscapesscripts/ours %.1fx (vs its compiled path at 74 ms/frame: %.1fx), ours/floor %.3fx (median of the run-by-run ratios)\n",
    (cs / f) / (ours / n), 0.074 / (ours / n), ratio
}'
