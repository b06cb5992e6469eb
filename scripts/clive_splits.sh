#!/usr/bin/env bash
# The default recipe on N seeded 80/20 splits of the 930 CLIVE images (docs/training.md).
# Usage: scripts/clive_splits.sh [FIRST_SEED] [LAST_SEED]   (defaults 0 4); then
#        python scripts/summarize_splits.py runs/clive_split*
set -euo pipefail
DATA=${DATA:-../shared/datasets/clive/labels.csv}
for seed in $(seq "${1:-0}" "${2:-4}"); do
  edge-iqa train --model edge_hybrid_n --data "$DATA" --out "runs/clive_split${seed}" \
    --split-seed "$seed" --seed 0 --val-fraction 0.2 --threads 1
done
