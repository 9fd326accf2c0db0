#!/bin/bash
# CamVid day -> dusk domain transfer with the image backend: four runs (fine level /
# staged super-class, each without and with AdaBN), two at a time with one kernel thread each.
#   S = day sequences 0006R0, 0016E5 (labeled); R = dusk 0001TP (labels dropped; read only for
#   @R); E = the same dusk frames with labels. camvid-11 network, 96x128, U-Net 8,16,32.
# Usage: scripts/camvid_day_dusk.sh OUT [SOURCE_ITERATIONS] [FINETUNE_ITERATIONS]
# Env: BIN (default .build/release/atso-transfer), DATA (default ../shared/data/camvid).
set -u
OUT=${1:?usage: camvid_day_dusk.sh OUT [SOURCE_ITERATIONS] [FINETUNE_ITERATIONS]}
SOURCE_ITERATIONS=${2:-400}
FINETUNE_ITERATIONS=${3:-150}
HERE=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BIN:-$HERE/.build/release/atso-transfer}
DATA=${DATA:-$HERE/../shared/data/camvid}
export ATSO_TRANSFER_MAPPINGS=${ATSO_TRANSFER_MAPPINGS:-$HERE/mappings}
D=$DATA/train.txt
mkdir -p "$OUT"
COMMON=(--seed 1 --generations 2 --folds 2
  --backend-option "source=camvid:$D?include=0006R0,0016E5"
  --backend-option "reference=camvid:$D?include=0001TP&unlabeled"
  --backend-option "test=camvid:$D?include=0001TP"
  --backend-option size=96x128 --backend-option widths=8,16,32 --backend-option batch=4
  --backend-option sourceIterations=$SOURCE_ITERATIONS
  --backend-option finetuneIterations=$FINETUNE_ITERATIONS
  --backend-option learningRate=0.02 --backend-option threads=1)
STAGED=(--schedules atso
  --stage name=coarse,method=schedules,level=super:camvid-11--super-5
  --stage name=target-coarse,method=train,level=super:camvid-11--super-5,network=target,labels=previous-stage-final
  --stage name=target-fine,method=train,level=fine,initialization=previous-stage,labels=relabel)
run() {
  local name=$1; shift; local t0; t0=$(date +%s)
  "$BIN" transfer -o "$OUT/$name" "${COMMON[@]}" "$@" > "$OUT/$name.out" 2> "$OUT/$name.log"
  echo "$name exit $? seconds $(( $(date +%s) - t0 ))" >> "$OUT/times.txt"
}
( run fine --schedules self-learning,stso,atso --no-ada-bn
  run staged "${STAGED[@]}" --no-ada-bn ) &
( run fine-adabn --schedules self-learning,stso,atso --ada-bn
  run staged-adabn "${STAGED[@]}" --ada-bn ) &
wait
python3 "$HERE/scripts/transfer_summary.py" fine="$OUT/fine" fine+AdaBN="$OUT/fine-adabn" \
  staged="$OUT/staged" staged+AdaBN="$OUT/staged-adabn"
