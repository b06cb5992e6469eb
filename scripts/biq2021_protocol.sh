#!/usr/bin/env bash
# Issue #19: the BIQ2021 + CLIVE recipe comparison, the shipped model and the CLIVE split protocol, as run
# for docs/training.md ("BIQ2021 + CLIVE"). Needs the prepared BIQ2021 folder (scripts/prepare_biq2021.py)
# at ../data/biq2021 and CLIVE at ../shared/datasets/clive. Every run shares one stem cache (runs/stem_cache).
#
#   scripts/biq2021_protocol.sh validate   # two recipes on one validation split (BIQ2021 Train 90/10, CLIVE 80/20)
#   scripts/biq2021_protocol.sh final      # the recipe chosen by the rule below, on everything (the shipped model)
#   scripts/biq2021_protocol.sh splits [S ...]  # BIQ2021 Train all + CLIVE split S 80 % (default S = 0..4; CLIVE goal)
#   scripts/biq2021_protocol.sh test       # the one-time BIQ2021 Test scoring of the final model
#   scripts/biq2021_protocol.sh int8-noise [W ...]  # the validation split again with --int8-noise W (default 10 3),
#                                          # compared with the plain run: FP32 accuracy and OpenVINO / ONNX Runtime
#                                          # INT8 drift on the export's 128 validation photos (issue 16)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
BIQ=${EDGE_IQA_BIQ2021:-../data/biq2021}
CLIVE=../shared/datasets/clive/labels.csv
common() {  # the recipe, fixed before any result: 3 epochs, short warm-up, one cached view per image
  echo --model edge_hybrid_n --data "$BIQ/train.csv" --data "$CLIVE" --seed 0 --epochs 3 --warmup-epochs 0.3 \
       --crop 256 --batch-size 16 --cache-views 1 --threads 2
}
# Rule fixed before the second recipe's result existed: the higher mean of the two datasets'
# deployment-path validation SROCC wins; a difference under 0.002 goes to the cheaper recipe (13).
winner() {
  "$PY" - <<'PY'
import json
def score(run):
    d = json.load(open(f"runs/{run}/metrics.json"))["last_exact_datasets"]
    return (d["biq2021/train"]["srocc"] + d["clive/labels"]["srocc"]) / 2
print(6 if score("val_ft6_s0") - score("val_ft13_s0") >= 0.002 else 13)
PY
}
# Issue 16, rule fixed before the INT8 results existed (weight 10 first; weight 3 added after weight 10's FP32
# result, before any INT8 result): a weight qualifies when the mean validation SROCC of the two datasets drops
# by less than 0.003 against the plain run AND the OpenVINO INT8 mean |dscore| on the export's 128 validation
# photos falls by at least 20 %; of those that qualify, the lowest INT8 mean |dscore| wins; none: 0 (off).
# It picked 3; the model trained with it on everything was measured and not shipped (docs/training.md,
# "Training against INT8 noise": its full INT8 misses the cpu profile's SROCC budget on the validation
# photos, so the export gives a block back to float at 1.6x the latency). `final` trains the plain recipe.
int8_noise_winner() {
  "$PY" - "$@" <<'PY'
import json, sys
def srocc(run):
    d = json.load(open(f"runs/{run}/metrics.json"))["last_exact_datasets"]
    return (d["biq2021/train"]["srocc"] + d["clive/labels"]["srocc"]) / 2
def int8_mean(run):
    rows = json.load(open(f"runs/{run}/int8_drift_validation.json"))["rows"]
    return next(r["mean_abs_dscore"] for r in rows if r["target"] == "cpu")
base = "val_ft13_s0"
ok = {w: int8_mean(f"val_ft13_noise{w}_s0") for w in sys.argv[1:]
      if srocc(base) - srocc(f"val_ft13_noise{w}_s0") < 0.003
      and int8_mean(f"val_ft13_noise{w}_s0") <= 0.8 * int8_mean(base)}
print(min(ok, key=ok.get) if ok else 0)
PY
}
case "${1:-}" in
  validate)
    for ft in 13 6; do
      edge-iqa train $(common) --freeze-through "$ft" --val-fraction 0.1 --val-fraction 0.2 --split-seed 0 \
        --out "runs/val_ft${ft}_s0"
    done
    "$PY" scripts/compare_on_val.py runs/val_ft6_s0 --reference runs/val_ft13_s0/last.safetensors \
      --out runs/val_ft6_s0/compare_vs_ft13.json ;;
  final)
    edge-iqa train $(common) --freeze-through "$(winner)" --val-fraction 0 --out runs/biq2021_clive_all
    "$PY" scripts/install_default_weights.py runs/biq2021_clive_all ;;
  splits)
    shift; seeds=("$@"); [ ${#seeds[@]} -eq 0 ] && seeds=(0 1 2 3 4)
    for s in "${seeds[@]}"; do
      edge-iqa train $(common) --freeze-through "$(winner)" --val-fraction 0 --val-fraction 0.2 --split-seed "$s" \
        --out "runs/split_biqall_clive_s$s"
    done ;;
  int8-noise)
    shift; weights=("$@"); [ ${#weights[@]} -eq 0 ] && weights=(10 3)
    runs=(val_ft13_s0)
    for w in "${weights[@]}"; do
      [ -f "runs/val_ft13_noise${w}_s0/metrics.json" ] || edge-iqa train $(common) --freeze-through 13 \
        --val-fraction 0.1 --val-fraction 0.2 --split-seed 0 --int8-noise "$w" --out "runs/val_ft13_noise${w}_s0"
      "$PY" scripts/compare_on_val.py "runs/val_ft13_noise${w}_s0" --reference runs/val_ft13_s0/last.safetensors \
        --out "runs/val_ft13_noise${w}_s0/compare_vs_ft13.json"
      runs+=("val_ft13_noise${w}_s0")
    done
    for run in "${runs[@]}"; do
      "$PY" scripts/quantization_study.py variants --checkpoint "runs/$run/last.safetensors" --targets cpu onnxruntime \
        --variants default --photos validation --work runs/int8_noise_study --threads 1 --speed-rounds 1 \
        --out "runs/$run/int8_drift_validation.json"
    done
    echo "the rule picks --int8-noise $(int8_noise_winner "${weights[@]}")" ;;
  test)
    "$PY" scripts/evaluate_checkpoint.py "$BIQ/test.csv" --checkpoint runs/biq2021_clive_all/last.safetensors \
      --out runs/biq2021_clive_all/biq2021_test.json ;;
  *) echo "usage: $0 validate|final|splits [S ...]|test|int8-noise [W ...]" >&2; exit 2 ;;
esac
