#!/bin/sh
# Semi-supervised hippocampus (MSD Task04, 200 cases): 10% of the training cases labeled,
# 40 cases held out for E, self-learning / STSO / ATSO for one generation, scaled for 2 shared
# CPU cores (U-Net widths 8,16; few SGD steps). Usage: scripts/run_hippocampus_10pct.sh RUN_DIR
set -eu
RUN=${1:?usage: $0 RUN_DIR}
DATA=${DATA:-$(dirname "$0")/../../shared/data/hippocampus-msd}
BIN=${BIN:-$(dirname "$0")/../.build/release/atso-transfer}
exec "$BIN" transfer --run-directory "$RUN" --seed 1 \
  --schedules self-learning,stso,atso --folds 2 --generations 1 \
  --backend-option kind=volume --backend-option dataset="$DATA" \
  --backend-option labeledFraction=0.1 --backend-option testCases=40 \
  --backend-option widths=8,16 --backend-option sourceIterations=${ITERATIONS:-1000} \
  --backend-option finetuneIterations=${FINE_TUNE_ITERATIONS:-300} \
  --backend-option batch=8 --backend-option learningRate=0.05
