#!/usr/bin/env bash
# Two `resume` started at once on a killed run, N times (default 20): one must finish, the other
# must be refused at once naming the first's pid, and the results must be byte-identical to an
# uninterrupted run every time. Uses the simulation backend (20 ms inside every write, so the
# remaining jobs take about a second) and the release binary.
#
# Usage: scripts/concurrent_resume.sh [N] [BINARY]   (build first: swift build -c release)
# Prints one line per attempt and the totals; exit status 0 when every attempt passed.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
n=${1:-20}
bin=${2:-"$here/.build/release/atso-transfer"}
[ -x "$bin" ] || { echo "no executable $bin (swift build -c release)" >&2; exit 2; }
T=$(mktemp -d /tmp/atso-concurrent-XXXXXX)
trap 'rm -rf "$T"' EXIT
cat >"$T/run.json" <<'EOF'
{"seed": 5, "folds": 2, "generations": 2,
 "backend": {"kind": "simulation", "units": 6, "delayMicroseconds": 20000}}
EOF
"$bin" transfer --config "$T/run.json" -o "$T/reference" >/dev/null || exit 2
results="metrics.jsonl table.json table.md curves-fine.png folds.json"
jobs=$(ls "$T/reference/steps" | wc -l)
records() { ls "$1/steps" 2>/dev/null | grep -c '\.json$'; }

passed=0
for attempt in $(seq 1 "$n"); do
  run="$T/run$attempt"
  kill_after=$((3 + RANDOM % (jobs - 6)))  # somewhere between the third job and the end
  "$bin" transfer --config "$T/run.json" -o "$run" >/dev/null 2>&1 &
  first=$!
  while kill -0 $first 2>/dev/null && [ "$(records "$run")" -lt $kill_after ]; do sleep 0.005; done
  kill -9 $first 2>/dev/null
  wait $first 2>/dev/null
  "$bin" resume "$run" >/dev/null 2>"$T/a.err" &
  a=$!
  "$bin" resume "$run" >/dev/null 2>"$T/b.err" &
  b=$!
  wait $a; sa=$?
  wait $b; sb=$?
  verdict=ok
  if [ $sa -eq 0 ] && [ $sb -ne 0 ]; then winner=$a; loser_log="$T/b.err"
  elif [ $sb -eq 0 ] && [ $sa -ne 0 ]; then winner=$b; loser_log="$T/a.err"
  else verdict="exit statuses $sa and $sb"; fi
  if [ "$verdict" = ok ] && ! grep -q "in use by process $winner " "$loser_log"; then
    verdict="refusal does not name $winner: $(head -c 200 "$loser_log")"
  fi
  for f in $results; do
    cmp -s "$T/reference/$f" "$run/$f" || verdict="$verdict; $f differs"
  done
  leftovers=$(find "$run" -name '*.partial*' -o -name '*.tmp-*' | wc -l)
  [ "$leftovers" -eq 0 ] || verdict="$verdict; $leftovers temporary files left"
  [ "$verdict" = ok ] && passed=$((passed + 1))
  printf 'attempt %2d: killed after %2d of %d jobs; resume exits %d and %d: %s\n' \
    "$attempt" "$kill_after" "$jobs" "$sa" "$sb" "$verdict"
done
echo "$passed of $n attempts: one resume finished, the other was refused naming it, results byte-identical"
[ $passed -eq "$n" ]
