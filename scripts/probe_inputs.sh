#!/usr/bin/env bash
# Feeds malformed and unusual inputs to every command of atso-transfer that reads them and
# records, per case: the exit status (or the signal), whether a bad input was accepted, and
# whether the message is clear (names the file or flag it is about, no Foundation/NSError text,
# no "Missing value" for a value that was given).
#
# Usage: scripts/probe_inputs.sh [BINARY] [REPORT.tsv]
#   BINARY  default .build/release/atso-transfer (build it first: swift build -c release)
#   REPORT  default /tmp/atso-probe/report.tsv
# Prints one line per case and the totals: signals, bad inputs accepted (exit 0), unclear
# messages. Each case runs under `ulimit -v 8 GiB` and a 120 s timeout, so an absurd allocation
# shows up as a crash instead of swapping the machine. Exit status: 0 when no signal, no
# accepted bad input and no unclear message; 1 otherwise.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-"$here/.build/release/atso-transfer"}
report=${2:-/tmp/atso-probe/report.tsv}
[ -x "$bin" ] || { echo "no executable $bin (swift build -c release)" >&2; exit 2; }
T=$(mktemp -d /tmp/atso-probe-XXXXXX)
trap 'rm -rf "$T"' EXIT
mkdir -p "$(dirname "$report")"
M=${PROBE_MAPPINGS:-"$here/mappings"}  # the mappings of the binary probed
F="$T/f"

python3 "$here/scripts/probe_fixtures.py" "$F" >/dev/null || exit 2
# Pillow is optional for the JPEG fixtures: fall back to the venv of torch when present.
if [ ! -f "$F/img/ok.jpg" ]; then
  for py in "$here/../venv-peers/bin/python" "$here/../venv-torch/bin/python"; do
    [ -x "$py" ] && "$py" "$here/scripts/probe_fixtures.py" "$F" >/dev/null 2>&1 && break
  done
fi
cp "$here/Tests/SegmentationTests/Fixtures/huge_header.jpg" "$F/img/huge_header.jpg"
[ -f "$F/img/ok.jpg" ] || cp "$here/Tests/SegmentationTests/Fixtures/rgb8.jpg" "$F/img/ok.jpg"

# A tiny dataset, a tiny checkpoint and a three-view model made from it.
"$bin" dataset synthesize --output "$T/data" --count 4 --width 64 --height 32 >/dev/null || exit 2
SRC="cityscapes:$T/data/source:train"
TGT="mapillary:$T/data/target:training"
"$bin" train --mappings "$M" --dataset "$SRC" --classes cityscapes-19 --widths 4,8 \
  --size 16x32 --batch 2 --iterations 2 --output "$T/run" --threads 1 >/dev/null 2>&1 || exit 2
CK="$T/run/checkpoint.safetensors"
"$bin" train --mappings "$M" --dataset "$SRC" --classes cityscapes-19 --model deeplab \
  --widths 4,4,8,8 --aspp-channels 4 --size 16x32 --batch 2 --iterations 1 \
  --output "$T/deeplab" --threads 1 >/dev/null 2>&1 || exit 2
mkdir -p "$T/views"
for v in axial coronal sagittal; do cp "$CK" "$T/views/$v.safetensors"; done
# Image folders and lists.
mkdir -p "$T/imgs_trunc" "$T/imgs_ok"
cp "$F/img/truncated.jpg" "$T/imgs_trunc/" 2>/dev/null || cp "$F/img/truncated.png" "$T/imgs_trunc/"
cp "$F/img/ok.png" "$T/imgs_ok/"
printf '%s\n' "$F/img/truncated.jpg" >"$T/list_trunc.txt"
# A label set with a value outside cityscapes-34 (200) beside the source images.
cp -r "$T/data/source" "$T/bad200"
python3 - "$T/bad200" <<'EOF'
import sys, os, struct, zlib
root = sys.argv[1]
def png(w, h, values):
    def chunk(k, p):
        return struct.pack(">I", len(p)) + k + p + struct.pack(">I", zlib.crc32(k + p) & 0xFFFFFFFF)
    rows = b"".join(b"\0" + bytes(values[y * w:(y + 1) * w]) for y in range(h))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
d = os.path.join(root, "gtFine/train/synth")
for name in os.listdir(d):
    open(os.path.join(d, name), "wb").write(png(64, 32, [7] * 2047 + [200]))
EOF
mkdir -p "$T/pred_empty" "$T/cs_empty/leftImg8bit/train" "$T/cs_empty/gtFine/train"

: >"$report"
signals=0 accepted=0 unclear=0 total=0 others=0
# Cases whose fix belongs to another part of the project (issue 12 is split between helpers):
# label values a class set lacks in the readers and the mapping commands (issue 13), the transfer
# configuration's backend values (issue 11). They are probed and counted all the same.
declare -A OWNER=(
  [train-labels-200]=taxonomy [mapping-validate-not-json]=taxonomy
  [mapping-validate-deep]=taxonomy [mapping-validate-empty]=taxonomy
  [config-config_inf_lr]=core [config-config_negative_lr]=core [config-config_batch_huge]=core
  [config-config_widths_4]=core [config-config_size_1x1]=core [config-config_folds_huge]=core
)
# probe NAME EXPECT NEEDLE -- ARGS...
#   EXPECT: reject (must fail with a clear message) | accept (must succeed) | any (no signal)
#   NEEDLE: text the error message must contain (the file or flag it is about), - for none
probe() {
  local name=$1 expect=$2 needle=$3
  shift 4
  local out="$T/out.$total" rc
  (ulimit -v 8388608; timeout -k 5 120 "$bin" "$@") >"$out.stdout" 2>"$out.stderr" </dev/null
  rc=$?
  local message
  # The error line when there is one, else the last lines of stderr (then stdout).
  message=$(grep -m1 '^Error:\|Fatal error\|Swift runtime failure' "$out.stderr")
  [ -n "$message" ] || message=$(grep -v '^\[segmentation\]\|^Usage:\|^  See\|^$' "$out.stderr" | tail -2)
  [ -n "$message" ] || message=$(tail -2 "$out.stdout")
  # Commands that report per file on stdout (mapping validate): add the first such line.
  if [ "$expect" = reject ] && [ "$needle" != - ] && ! grep -qF -- "$needle" <<<"$message"; then
    message="$message | $(grep -m1 -F -- "$needle" "$out.stdout")"
  fi
  message=$(printf '%s' "$message" | tr '\n\t' '  ' | cut -c1-300)
  local verdict=ok
  if [ $rc -ge 124 ]; then
    if [ $rc -eq 124 ]; then verdict=HANG; else verdict="SIGNAL-$((rc - 128))"; fi
    signals=$((signals + 1))
  elif [ "$expect" = reject ] && [ $rc -eq 0 ]; then
    verdict=ACCEPTED; accepted=$((accepted + 1))
  elif [ "$expect" = accept ] && [ $rc -ne 0 ]; then
    verdict=REFUSED; unclear=$((unclear + 1))
  elif [ "$expect" = reject ]; then
    if [ -z "$message" ] \
      || grep -qE "Error Domain|NSCocoaErrorDomain|couldn.t be|could not be completed|is 348, expected 348|cannot encode the configuration|Missing value for|Fatal error|dataCorrupted|keyNotFound|typeMismatch|Swift\.|_NSCF|Dictionary<|Array<|Optional<|UInt64|Int32" <<<"$message" \
      || { [ "$needle" != - ] && ! grep -qF -- "$needle" <<<"$message"; }; then
      verdict=UNCLEAR; unclear=$((unclear + 1))
    fi
  fi
  total=$((total + 1))
  local owner=${OWNER[$name]:-inputs}
  if [ "$verdict" != ok ] && [ "$owner" != inputs ]; then others=$((others + 1)); fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$expect" "$rc" "$verdict" "$owner" "$message" >>"$report"
  printf '%-34s %-7s rc=%-3s %-9s %-8s %s\n' "$name" "$expect" "$rc" "$verdict" "$owner" "${message:0:150}"
}

# --- train / predict / evaluate / adapt-bn: flags --------------------------------------------
TR=(train --mappings "$M" --dataset "$SRC" --classes cityscapes-19 --widths 4,8 --batch 2
  --iterations 1 --threads 1)
probe train-size-1x1 reject "--size" -- "${TR[@]}" --size 1x1 --output "$T/o1"
probe train-size-huge reject "--size" -- "${TR[@]}" --size 100000x100000 --output "$T/o2"
probe train-size-0 reject "--size" -- "${TR[@]}" --size 0x32 --output "$T/o3"
probe train-size-text reject "--size" -- "${TR[@]}" --size big --output "$T/o4"
probe train-lr-nan reject "--learning-rate" -- "${TR[@]}" --size 16x32 --learning-rate nan --output "$T/o5"
probe train-lr-neg reject "--learning-rate" -- "${TR[@]}" --size 16x32 --learning-rate -1 --output "$T/o6"
probe train-lr-inf reject "--learning-rate" -- "${TR[@]}" --size 16x32 --learning-rate inf --output "$T/o7"
probe train-momentum-nan reject "--momentum" -- "${TR[@]}" --size 16x32 --momentum nan --output "$T/o8"
probe train-wd-nan reject "--weight-decay" -- "${TR[@]}" --size 16x32 --weight-decay nan --output "$T/o9"
probe train-flip-nan reject "--flip" -- "${TR[@]}" --size 16x32 --flip nan --output "$T/o10"
probe train-scale-nan reject "--scale" -- "${TR[@]}" --size 16x32 --scale nan,1 --output "$T/o11"
probe train-batch-huge reject "--batch" -- train --mappings "$M" --dataset "$SRC" --classes cityscapes-19 --widths 4,8 --size 16x32 --batch 100000000 --iterations 1 --output "$T/o12"
probe train-widths-huge reject "--widths" -- train --mappings "$M" --dataset "$SRC" --classes cityscapes-19 --widths 100000,100000 --size 16x32 --batch 2 --iterations 1 --output "$T/o13"
probe train-widths-deep reject "128x128" -- train --mappings "$M" --dataset "$SRC" --classes cityscapes-19 --widths 2,2,2,2,2,2,2,2 --size 16x32 --batch 2 --iterations 1 --output "$T/o14"
probe train-deeplab-size-4 reject "--size" -- train --mappings "$M" --dataset "$SRC" --classes cityscapes-19 --model deeplab --widths 4,4,8,8 --aspp-channels 4 --size 4x4 --batch 2 --iterations 1 --output "$T/o15"
probe train-threads-huge reject "--threads" -- "${TR[@]}" --size 16x32 --threads 100000 --output "$T/o16"
probe train-iterations-huge reject "--iterations" -- train --mappings "$M" --dataset "$SRC" --classes cityscapes-19 --widths 4,8 --size 16x32 --batch 2 --iterations 9223372036854775807 --output "$T/o17"
probe train-epochs-huge reject "--epochs" -- train --mappings "$M" --dataset "$SRC" --classes cityscapes-19 --widths 4,8 --size 16x32 --batch 2 --epochs 4611686018427387904 --output "$T/o18"
probe train-labels-200 reject "200" -- train --mappings "$M" --dataset "cityscapes:$T/bad200:train" --classes cityscapes-19 --widths 4,8 --size 16x32 --batch 2 --iterations 1 --output "$T/o19"
probe train-empty-dataset reject "cs_empty" -- "${TR[@]/$SRC/cityscapes:$T/cs_empty:train}" --size 16x32 --output "$T/o20"
probe train-ok accept - -- "${TR[@]}" --size 16x32 --output "$T/o21"
probe predict-size-1x1 reject "--size" -- predict --mappings "$M" --checkpoint "$CK" --dataset "$SRC" --size 1x1 --output "$T/p1"
probe predict-size-huge reject "--size" -- predict --mappings "$M" --checkpoint "$CK" --dataset "$SRC" --size 100000x100000 --output "$T/p2"
probe predict-deeplab-1x1 reject "--size" -- predict --mappings "$M" --checkpoint "$T/deeplab/checkpoint.safetensors" --dataset "$SRC" --size 2x2 --output "$T/p3"
probe predict-truncated-jpeg reject "truncated" -- predict --mappings "$M" --checkpoint "$CK" --images "$T/imgs_trunc" --size 16x32 --output "$T/p4"
probe predict-list-truncated reject "truncated" -- predict --mappings "$M" --checkpoint "$CK" --list "$T/list_trunc.txt" --size 16x32 --output "$T/p5"
probe predict-empty-folder reject "empty" -- predict --mappings "$M" --checkpoint "$CK" --images "$F/empty" --size 16x32 --output "$T/p6"
probe predict-missing-folder reject "nowhere" -- predict --mappings "$M" --checkpoint "$CK" --images "$T/nowhere" --size 16x32 --output "$T/p7"
probe predict-ok accept - -- predict --mappings "$M" --checkpoint "$CK" --images "$T/imgs_ok" --size 16x32 --output "$T/p8"
probe predict-threads-neg reject "--threads" -- predict --mappings "$M" --checkpoint "$CK" --images "$T/imgs_ok" --threads -1 --output "$T/p10"
probe predict-threads-0 reject "--threads" -- predict --mappings "$M" --checkpoint "$CK" --images "$T/imgs_ok" --threads 0 --output "$T/p9"
probe evaluate-size-1x1 reject "--size" -- evaluate --mappings "$M" --checkpoint "$CK" --truth "$SRC" --size 1x1
probe evaluate-size-huge reject "--size" -- evaluate --mappings "$M" --checkpoint "$CK" --truth "$SRC" --size 100000x100000
probe evaluate-empty-predictions reject "pred_empty" -- evaluate --mappings "$M" --truth "$SRC" --predictions "$T/pred_empty" --prediction-classes cityscapes-19
probe adaptbn-size-1x1 reject "--size" -- adapt-bn --checkpoint "$CK" --dataset "$TGT?unlabeled" --size 1x1 --output "$T/a1.safetensors"
probe adaptbn-size-huge reject "--size" -- adapt-bn --checkpoint "$CK" --dataset "$TGT?unlabeled" --size 100000x100000 --output "$T/a2.safetensors"
probe adaptbn-batch-huge reject "--batch" -- adapt-bn --checkpoint "$CK" --dataset "$TGT?unlabeled" --size 16x32 --batch 100000000 --output "$T/a3.safetensors"
probe adaptbn-empty reject "comments.txt" -- adapt-bn --checkpoint "$CK" --dataset "list:$F/lists/comments.txt:cityscapes-34" --size 16x32 --output "$T/a4.safetensors"
probe adaptbn-ok accept - -- adapt-bn --checkpoint "$CK" --dataset "$TGT?unlabeled" --size 16x32 --batch 2 --output "$T/a5.safetensors"

# --- checkpoints (safetensors) ---------------------------------------------------------------
for f in "$F"/st/*.safetensors; do
  probe "ckpt-$(basename "$f" .safetensors)" reject "$(basename "$f")" -- predict --mappings "$M" --checkpoint "$f" --images "$T/imgs_ok" --size 16x32 --output "$T/pc"
done
head -c 2000 "$CK" >"$T/ckpt_truncated.safetensors"
probe ckpt-truncated reject "ckpt_truncated.safetensors" -- predict --mappings "$M" --checkpoint "$T/ckpt_truncated.safetensors" --images "$T/imgs_ok" --size 16x32 --output "$T/pc"
probe ckpt-missing reject "missing.safetensors" -- predict --mappings "$M" --checkpoint "$T/missing.safetensors" --images "$T/imgs_ok" --size 16x32 --output "$T/pc"
probe ckpt-directory reject "views" -- predict --mappings "$M" --checkpoint "$T/views" --images "$T/imgs_ok" --size 16x32 --output "$T/pc"

# --- images through dataset info -------------------------------------------------------------
for f in "$F"/img/*; do
  n=$(basename "$f")
  case $n in ok.*|progressive.jpg|label_rgb.png) e=accept ;; *) e=reject ;; esac
  printf '%s\n' "$f" >"$T/list_$n.txt"
  probe "image-$n" "$e" "$n" -- dataset info "list:$T/list_$n.txt:cityscapes-34" --decode 1
done
printf '%s %s\n' "$F/img/ok.png" "$F/img/label_rgb.png" >"$T/list_rgb_label.txt"
probe label-rgb-png reject "label_rgb.png" -- dataset info "list:$T/list_rgb_label.txt:cityscapes-34" --decode 1
for f in "$F"/lists/*.txt; do
  probe "list-$(basename "$f" .txt)" reject "$(basename "$f")" -- dataset info "list:$f:cityscapes-34"
done
probe spec-unknown-kind reject "kitti" -- dataset info "kitti:/x"
probe spec-bad-query reject "frobnicate" -- dataset info "camvid:/x?frobnicate"
probe spec-empty-cityscapes reject "cs_empty" -- dataset info "cityscapes:$T/cs_empty:train"

# --- NIfTI: nifti-info, predict-volume, medical-dice -----------------------------------------
for f in "$F"/nifti/*; do
  n=$(basename "$f")
  case $n in labels_nan.nii) e=reject ;;
    ok.nii|ok.nii.gz|ok_labels.nii|one_slice*.nii|tiny_2x2x2.nii|labels_*) e=accept ;;
    bomb.nii.gz) e=any ;; *) e=reject ;; esac
  probe "nifti-info-$n" "$e" "$n" -- nifti-info "$f"
done
for n in one_slice.nii tiny_2x2x2.nii nan_voxels.nii zero_spacing.nii nan_spacing.nii truncated_100.nii; do
  case $n in tiny_2x2x2.nii) e=accept ;; *) e=reject ;; esac
  probe "predict-volume-$n" "$e" "$n" -- predict-volume --model "$T/views" --input "$F/nifti/$n" --output "$T/pv_$n.nii.gz"
done
probe predict-volume-empty-folder reject "empty" -- predict-volume --model "$T/views" --input "$F/empty" --output "$T/pv_out"
probe predict-volume-no-niftis reject "notniftis" -- predict-volume --model "$T/views" --input "$F/notniftis" --output "$T/pv_out2"
probe predict-volume-bad-model reject "st" -- predict-volume --model "$F/st" --input "$F/nifti/ok.nii" --output "$T/pv3.nii.gz"
probe dice-ok accept - -- medical-dice --predictions "$F/dice/pred" --labels "$F/dice/truth" --classes 3
probe dice-truth-200 reject "200" -- medical-dice --predictions "$F/dice200/pred" --labels "$F/dice200/truth" --classes 3
probe dice-pred-200 reject "200" -- medical-dice --predictions "$F/dicepred200/pred" --labels "$F/dicepred200/truth" --classes 3
probe dice-shape reject "case1" -- medical-dice --predictions "$F/diceshape/pred" --labels "$F/diceshape/truth" --classes 3
probe dice-unpaired reject "case" -- medical-dice --predictions "$F/diceunpaired/pred" --labels "$F/diceunpaired/truth" --classes 3
probe dice-empty reject "empty" -- medical-dice --predictions "$F/empty" --labels "$F/empty2" --classes 3
probe dice-missing reject "nowhere" -- medical-dice --predictions "$T/nowhere" --labels "$F/empty2" --classes 3
probe dice-table-short reject "lookup table" -- medical-dice --predictions "$F/dice/pred" --labels "$F/dice/truth" --classes 2 --table 0,1
probe dice-classes-300 reject "--classes" -- medical-dice --predictions "$F/dice/pred" --labels "$F/dice/truth" --classes 300
probe dice-classes-0 reject "--classes" -- medical-dice --predictions "$F/dice/pred" --labels "$F/dice/truth" --classes 0

# --- transfer configurations and run folders --------------------------------------------------
for f in "$F"/json/config_*.json; do
  probe "config-$(basename "$f" .json)" reject "$(basename "$f")" -- transfer --config "$f" -o "$T/r_$(basename "$f" .json)" --dry-run
done
probe config-not-json reject "not_json.json" -- transfer --config "$F/json/not_json.json" -o "$T/rj" --dry-run
probe config-empty reject "empty.json" -- transfer --config "$F/json/empty.json" -o "$T/rj2" --dry-run
probe config-deep reject "deep.json" -- transfer --config "$F/json/deep.json" -o "$T/rj3" --dry-run
probe config-missing reject "nowhere.json" -- transfer --config "$T/nowhere.json" -o "$T/rj4" --dry-run
cat >"$T/sim.json" <<'JSON'
{"seed": 1, "folds": 2, "generations": 1, "backend": {"kind": "simulation", "units": 4}}
JSON
"$bin" transfer --config "$T/sim.json" -o "$T/simrun" >/dev/null 2>&1
sed -i 's/"generations" : 1/"generations" : 2/' "$T/simrun/configuration.json"
probe resume-edited-configuration reject "generations: 1 -> 2" -- resume "$T/simrun"
probe transfer-into-a-run reject "already holds a run" -- transfer --config "$T/sim.json" -o "$T/simrun"
probe resume-not-a-run reject "$F/empty" -- resume "$F/empty"
probe volume-dataset-json-bad reject "dataset.json" -- transfer -o "$T/rv1" --backend-option kind=volume --backend-option "dataset=$F/json/dataset_json_bad"
probe volume-dataset-json-missing reject "a.nii.gz" -- transfer -o "$T/rv2" --backend-option kind=volume --backend-option "dataset=$F/json/dataset_json_missing"

# --- mappings ----------------------------------------------------------------------------------
probe mapping-validate-not-json reject "not_json.json" -- mapping validate "$F/json/not_json.json"
probe mapping-validate-deep reject "deep.json" -- mapping validate "$F/json/deep.json"
probe mapping-validate-empty reject "empty.json" -- mapping validate "$F/json/empty.json"

echo
printf 'cases %d: signals %d, bad inputs accepted %d, unclear or refused %d (report %s)\n' \
  "$total" "$signals" "$accepted" "$unclear" "$report"
printf 'of these findings, %d are cases owned by other helpers (column 5 of the report)\n' "$others"
[ $signals -eq 0 ] && [ $accepted -eq 0 ] && [ $unclear -eq 0 ]
