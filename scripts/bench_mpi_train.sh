#!/bin/sh
# Data-parallel `train` from 1 to N ranks on this machine: images/s of the training loop as
# rank 0 reports it on its last step line, alternating the two (1 process, N ranks) ROUNDS
# times, with the medians and their ratio, the CPU, the OpenBLAS core and the load printed.
#
#   scripts/bench_mpi_train.sh [BINARY] [RANKS] [ROUNDS] [STEPS]
#
# Needs CamVid under ../shared/data/camvid (the README's reference network: U-Net widths
# 16,32,64,128 at 96x128, batch 8, one compute thread per process).
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
binary=${1:-$here/.build/release/atso-transfer}
ranks=${2:-2}
rounds=${3:-3}
steps=${4:-40}
data=$here/../shared/data/camvid
[ -f "$data/train.txt" ] || { echo "CamVid is missing at $data" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

run() {  # run RANKS LOG: one training, rank 0's last step line in LOG
  set -- "$1" "$2" train --dataset "camvid:$data/train.txt?include=0006R0,0016E5" \
    --classes camvid-11 --model unet --size 96x128 --batch 8 --iterations "$steps" \
    --learning-rate 0.01 --seed 0 --threads 1 --output "$work/out" --checkpoint-every 100000 \
    --log-every 1000 --mappings "$here/mappings"
  count=$1; log=$2; shift 2
  rm -rf "$work/out"
  if [ "$count" = 1 ]; then
    "$binary" "$@" >"$log" 2>&1
  else
    mpirun --allow-run-as-root --oversubscribe -np "$count" "$binary" "$@" >"$log" 2>&1
  fi
  grep "step $steps/$steps" "$log" | sed 's/.*  \([0-9.]*\) img\/s.*/\1/' | tail -1
}

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

"$binary" doctor 2>/dev/null | grep -E '^(CPU|core in use|vector kernels)' || true
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
: >"$work/one"
: >"$work/many"
i=0
while [ "$i" -lt "$rounds" ]; do
  one=$(run 1 "$work/log1")
  many=$(run "$ranks" "$work/logN")
  echo "round $((i + 1)): 1 process $one img/s, $ranks ranks $many img/s"
  echo "$one" >>"$work/one"
  echo "$many" >>"$work/many"
  i=$((i + 1))
done
one=$(median <"$work/one")
many=$(median <"$work/many")
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "median: 1 process $one img/s, $ranks ranks $many img/s, ratio $(echo "$many $one" | awk '{ printf "%.2f", $1 / $2 }')"
