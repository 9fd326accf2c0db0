#!/bin/bash
# The reference recipe of shared/bench/FIDELITY.md end to end: CamVid day -> dusk with the
# reference U-Net (16,32,64,128) at 96x128, as torch_atso_reference.py runs it.
#   S = the day frames 0006R0 + 0016E5 of train.txt and val.txt (406), R = the 62 dusk frames
#   0001TP of train.txt (labels read only to score @R), E = the same 62 dusk frames with labels.
#   M0 = `atso-transfer train` as README "Train on CamVid" (3000 steps, seed SEED), imported with
#   sourceModel. Every student: a copy of its initial model, fresh SGD (momentum 0.9, weight
#   decay 5e-4), lr 0.005 poly over 750 steps, batches of 4 S + 4 R images, flip + scale
#   0.75-1.25 + crop on all 8, batch norm in training mode. Pseudo labels: the teacher (with
#   AdaBN: its copy with batch-norm statistics of R) on the un-augmented image, arg-max, no
#   threshold; super-class labels: arg-max of the softmax summed per super class. K = 2, T = 3.
# Runs (each a run directory with table.md, table.json, metrics.jsonl, curves and agreement
# plots; every table has the baselines source only and AdaBN alone):
#   fine-adabn     ATSO, STSO, self-learning with AdaBN before labeling (ATSO listed first: its
#                  jobs run first, so a run cut short has the headline rows)
#   staged-adabn   ATSO at super:camvid-11--super-5, then fine: R relabeled by its final
#                  model, which is fine-tuned on S + R (FIDELITY's "staged 5 -> 11")
#   stage3-atso    (FULL=1) ATSO at the fine level starting from the super-5 final model
#   fine           (FULL=1) self-learning, STSO, ATSO without AdaBN
#   oracle         (FULL=1) the reference U-Net trained on S and the dusk labels of R
# Usage: scripts/camvid_recipe.sh OUT [SEED]       (FULL=1 for the runs marked so)
# Env: BIN (default .build/release/atso-transfer), DATA (default ../shared/data/camvid),
#   THREADS (kernel threads per process, default 2), PARALLEL (runs at a time, default 1),
#   M0 (a trained checkpoint to use instead of training one), GENERATIONS (default 3),
#   RUNS (the runs to do, in order, e.g. "fine-adabn oracle staged-adabn"; default as above).
# Resumable: run it again with the same arguments; finished runs are skipped, killed ones resumed.
set -u
OUT=${1:?usage: camvid_recipe.sh OUT [SEED]}
SEED=${2:-0}
HERE=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BIN:-$HERE/.build/release/atso-transfer}
DATA=$(cd "${DATA:-$HERE/../shared/data/camvid}" && pwd)
THREADS=${THREADS:-2}
PARALLEL=${PARALLEL:-1}
GENERATIONS=${GENERATIONS:-3}
export ATSO_TRANSFER_MAPPINGS=${ATSO_TRANSFER_MAPPINGS:-$HERE/mappings}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
log() { echo "[$(date +%H:%M:%S)] $*" | tee -a "$OUT/times.txt"; }
log "recipe seed $SEED: $(uptime)"

# S: the day frames of train.txt and val.txt, one list with absolute paths.
for list in train.txt val.txt; do
  awk -v d="$DATA" '$1 ~ /(^|\/)(0006R0|0016E5)_/ { print d "/" $1 " " d "/" $2 }' "$DATA/$list"
done > "$OUT/day.txt"

# M0: the reference U-Net of README "Train on CamVid".
if [ -n "${M0:-}" ] && [ ! -f "$M0" ]; then echo "M0=$M0: no such checkpoint" >&2; exit 2; fi
M0=${M0:-$OUT/m0-seed$SEED/checkpoint.safetensors}
# The reference U-Net trained as README "Train on CamVid" on the frames of SEQUENCES in
# train.txt (and the day frames of val.txt), into OUT/NAME, resumed if killed.
train_unet() {  # NAME SEQUENCES
  local resume=(); [ -f "$OUT/$1/training.json" ] && resume=(--resume)
  "$BIN" train --dataset "camvid:$DATA/train.txt?include=$2" \
    --dataset "camvid:$DATA/val.txt?include=0006R0,0016E5" \
    --classes camvid-11 --model unet --size 96x128 --batch 8 --epochs 60 \
    --learning-rate 0.01 --momentum 0.9 --weight-decay 5e-4 --initialization pytorch \
    --seed "$SEED" --threads "$THREADS" --checkpoint-every 100 "${resume[@]}" \
    --output "$OUT/$1" > "$OUT/$1.log" 2>&1
}
if [ ! -f "$M0" ] || { [ "$M0" = "$OUT/m0-seed$SEED/checkpoint.safetensors" ] && [ ! -f "$OUT/m0-seed$SEED/done" ]; }; then
  t0=$(date +%s)
  train_unet "m0-seed$SEED" 0006R0,0016E5 || { log "M0 failed"; exit 1; }
  touch "$OUT/m0-seed$SEED/done"
  log "M0 seed $SEED trained in $(( $(date +%s) - t0 )) s"
fi

# The backend object every run shares (numbers as JSON numbers).
backend() {
  cat <<EOF
{"kind": "image",
 "source": "camvid:$OUT/day.txt",
 "reference": "camvid:$DATA/train.txt?include=0001TP&unlabeled",
 "test": "camvid:$DATA/train.txt?include=0001TP",
 "batch": 8, "pseudoShare": 0.5, "momentum": 0.9, "weightDecay": 0.0005,
 "finetuneIterations": 750, "finetuneLearningRate": 0.005,
 "scale": [0.75, 1.25], "flip": 0.5, "threads": $THREADS}
EOF
}
configuration() {  # NAME SCHEDULES ADABN STAGES
  cat > "$OUT/$1.json" <<EOF
{"seed": $SEED, "schedules": $2, "folds": 2, "generations": $GENERATIONS,
 "pseudoLabels": {"adaptBatchNorm": $3},
 "sourceModel": "$M0",
 "stages": $4,
 "backend": $(backend)}
EOF
}
FINE='[{"name": "fine", "method": "schedules"}]'
SUPER='{"name": "super5", "method": "schedules", "level": "super:camvid-11--super-5"}'
configuration fine-adabn '["atso", "stso", "self-learning"]' true "$FINE"
configuration staged-adabn '["atso"]' true "[$SUPER,
  {\"name\": \"fine\", \"method\": \"train\", \"initialization\": \"previous-stage\", \"labels\": \"relabel\"}]"
configuration stage3-atso '["atso"]' true "[$SUPER,
  {\"name\": \"fine\", \"method\": \"schedules\", \"initialization\": \"previous-stage\"}]"
configuration fine '["atso", "stso", "self-learning"]' false "$FINE"

run() {  # NAME
  local name=$1 t0; t0=$(date +%s)
  if [ -f "$OUT/$name/configuration.json" ]; then
    "$BIN" resume "$OUT/$name" >> "$OUT/$name.out" 2>> "$OUT/$name.log"
  else
    "$BIN" transfer --config "$OUT/$name.json" -o "$OUT/$name" > "$OUT/$name.out" 2> "$OUT/$name.log"
  fi
  log "$name exit $? in $(( $(date +%s) - t0 )) s; $(uptime)"
}
oracle() {
  local t0; t0=$(date +%s)
  [ -f "$OUT/oracle-seed$SEED/dusk.json" ] && { log "oracle: done before"; return 0; }
  train_unet "oracle-seed$SEED" 0006R0,0016E5,0001TP || { log "oracle failed"; return 1; }
  "$BIN" evaluate --checkpoint "$OUT/oracle-seed$SEED/checkpoint.safetensors" \
    --truth "camvid:$DATA/train.txt?include=0001TP" --size 96x128 --json "$OUT/oracle-seed$SEED/dusk.json" \
    > "$OUT/oracle-seed$SEED/dusk.txt" 2>&1
  "$BIN" evaluate --checkpoint "$OUT/oracle-seed$SEED/checkpoint.safetensors" \
    --truth "camvid:$DATA/train.txt?include=0001TP" --size 96x128 --at-working-size \
    --json "$OUT/oracle-seed$SEED/dusk-96x128.json" > "$OUT/oracle-seed$SEED/dusk-96x128.txt" 2>&1
  log "oracle seed $SEED in $(( $(date +%s) - t0 )) s"
}

if [ -n "${RUNS:-}" ]; then read -r -a RUNS <<< "$RUNS"
else RUNS=(fine-adabn staged-adabn); [ "${FULL:-0}" = 1 ] && RUNS+=(stage3-atso fine oracle); fi
running=0
for name in "${RUNS[@]}"; do
  if [ "$name" = oracle ]; then oracle & else run "$name" & fi
  running=$((running + 1))
  if [ "$running" -ge "$PARALLEL" ]; then wait -n; running=$((running - 1)); fi
done
wait
python3 "$HERE/scripts/recipe_summary.py" "$OUT" > "$OUT/summary.md"
log "recipe seed $SEED finished; summary in $OUT/summary.md"
