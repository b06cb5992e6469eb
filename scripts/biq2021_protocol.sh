#!/usr/bin/env bash
# Issue #19: the BIQ2021 + CLIVE recipe comparison, the shipped model and the CLIVE split protocol, as run
# for docs/training.md ("BIQ2021 + CLIVE"). Needs the prepared BIQ2021 folder (scripts/prepare_biq2021.py)
# at ../data/biq2021 and CLIVE at ../shared/datasets/clive. Every run shares one stem cache (runs/stem_cache).
#
#   scripts/biq2021_protocol.sh validate   # two recipes on one validation split (BIQ2021 Train 90/10, CLIVE 80/20)
#   scripts/biq2021_protocol.sh final      # the recipe chosen by the rule below, on everything (the shipped model)
#   scripts/biq2021_protocol.sh splits [S ...]  # BIQ2021 Train all + CLIVE split S 80 % (default S = 0..4; CLIVE goal)
#   scripts/biq2021_protocol.sh test       # the one-time BIQ2021 Test scoring of the final model
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
  test)
    "$PY" scripts/evaluate_checkpoint.py "$BIQ/test.csv" --checkpoint runs/biq2021_clive_all/last.safetensors \
      --out runs/biq2021_clive_all/biq2021_test.json ;;
  *) echo "usage: $0 validate|final|splits [S ...]|test" >&2; exit 2 ;;
esac
