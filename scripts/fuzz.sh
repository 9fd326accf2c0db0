#!/usr/bin/env bash
# Builds the libFuzzer harnesses of Fuzz/ (swift build -c release with the fuzzer and address
# sanitizers, in Fuzz/.build) and runs each on a copy of its seed corpus in Fuzz/Corpus/<harness>.
#
# Usage: scripts/fuzz.sh [-runs N | -seconds S] [HARNESS...]
#   -runs N      executions per harness (default 1000000, the figure of the README)
#   -seconds S   run each harness for S seconds instead (what .ci/run does: -seconds 5)
#   HARNESS      FuzzPNG FuzzJPEG FuzzNIfTI FuzzSafetensors FuzzClassSet FuzzMapping
#                FuzzConfiguration FuzzDatasetSpec (default: all)
# The grown corpora and crash reproducers stay in $FUZZ_WORK (default /tmp/atso-fuzz-<folder of
# the package>); a crash (or leak, or sanitizer report) stops that harness, prints the reproducer
# and makes the script exit 1 after the others ran. Prints one line per harness: executions, seconds, corpus size,
# coverage (libFuzzer's cov/ft) and the outcome.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
limit=(-runs=1000000)
harnesses=()
while [ $# -gt 0 ]; do
  case $1 in
    -runs) limit=(-runs="$2"); shift 2 ;;
    -seconds) limit=(-max_total_time="$2"); shift 2 ;;
    *) harnesses+=("$1"); shift ;;
  esac
done
[ ${#harnesses[@]} -gt 0 ] || harnesses=(FuzzPNG FuzzJPEG FuzzNIfTI FuzzSafetensors FuzzClassSet
  FuzzMapping FuzzConfiguration FuzzDatasetSpec)
work=${FUZZ_WORK:-/tmp/atso-fuzz-$(basename "$here")}
mkdir -p "$work"

cd "$here/Fuzz"
# SwiftPM's --sanitize=fuzzer only links libFuzzer: the Swift modules get their coverage
# instrumentation from -sanitize=fuzzer passed to swiftc.
flags=(-c release --sanitize=fuzzer --sanitize=address -Xswiftc -sanitize=fuzzer,address)
# The build plan is made again each time: SwiftPM keeps the source list of the path dependency
# (the main package) from its last plan and would miss files added there since.
rm -f .build/release.yaml .build/release/description.json
echo "building the harnesses (release, fuzzer + address sanitizers)..." >&2
swift build "${flags[@]}" >"$work/build.log" 2>&1 || {
  tail -30 "$work/build.log" >&2; exit 2; }
bin=$(swift build "${flags[@]}" --show-bin-path)

# Inputs larger than this teach nothing more about the parsers and slow each execution down.
declare -A max_len=([FuzzSafetensors]=16384 [FuzzNIfTI]=4096 [FuzzPNG]=4096 [FuzzJPEG]=4096)
failed=0
printf '%-18s %10s %8s %7s %12s  %s\n' harness executions seconds corpus "cov/ft" outcome
for name in "${harnesses[@]}"; do
  corpus="$work/corpus-$name"
  mkdir -p "$corpus" "$work/crashes-$name"
  cp -n "$here/Fuzz/Corpus/$name/"* "$corpus/" 2>/dev/null
  log="$work/$name.log"
  start=$(date +%s)
  # ASan: leaks are reported at exit (detect_leaks=1); libFuzzer's rss limit catches growth.
  # Swift's own crash handler is off: it would read the crashed process under ASan and report
  # itself instead of the Swift runtime failure.
  SWIFT_BACKTRACE=enable=no ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 "$bin/$name" "${limit[@]}" \
    -max_len="${max_len[$name]:-2048}" -rss_limit_mb=2048 -timeout=20 -print_final_stats=1 \
    -artifact_prefix="$work/crashes-$name/" "$corpus" >"$log" 2>&1
  status=$?
  seconds=$(($(date +%s) - start))
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -1 | sed 's/cov: //; s/ ft: /\//')
  size=$(ls "$corpus" | wc -l)
  if [ $status -eq 0 ]; then
    outcome="no crash, leak or sanitizer report"
  else
    outcome="FAILED (exit $status): $(grep -m1 -E 'Swift runtime failure|ERROR|Fatal|deadly|timeout|leak' "$log")"
    outcome+=" reproducer: $(ls -t "$work/crashes-$name" | head -1)"
    failed=1
  fi
  printf '%-18s %10s %8s %7s %12s  %s\n' "$name" "${runs:-?}" "$seconds" "$size" "${cov:-?}" \
    "$outcome"
done
exit $failed
