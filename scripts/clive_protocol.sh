#!/usr/bin/env bash
# The evaluation protocol and the shipped model, as run for docs/training.md:
#   - the default recipe (`edge-iqa train` defaults) on 5 seeded 80/20 splits of the 930 CLIVE images
#   - the same recipe on all 930 images -> edge_iqa/weights/edge_hybrid_n.* (scripts/install_default_weights.py)
# Runs are independent (1 torch thread each, deterministic given the seeds, so running them one by
# one or side by side gives the same numbers) and share the stem cache in runs/stem_cache. The first
# run builds the cache; start the others once runs/stem_cache/*.safetensors exists.
# Usage: scripts/clive_protocol.sh
#        python scripts/summarize_splits.py runs/clive_split{0,1,2,3,4}
#        python scripts/install_default_weights.py runs/clive_all930 runs/clive_split{0,1,2,3,4}
set -euo pipefail
DATA=${DATA:-../shared/datasets/clive/labels.csv}
JOBS=${JOBS:-6}
split() { edge-iqa train --model edge_hybrid_n --data "$DATA" --out "runs/clive_split$1" --split-seed "$1" \
            --seed 0 --val-fraction 0.2 --threads 1 > "runs/clive_split$1.log" 2>&1; }
final() { edge-iqa train --model edge_hybrid_n --data "$DATA" --out runs/clive_all930 --seed 0 \
            --val-fraction 0 --threads 1 > runs/clive_all930.log 2>&1; }
mkdir -p runs
if ! compgen -G "runs/stem_cache/stem-*.safetensors" > /dev/null; then
  split 0  # builds the cache
  seeds=(1 2 3 4)
else
  seeds=(0 1 2 3 4)
fi
final &
for seed in "${seeds[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do sleep 5; done
  split "$seed" &
done
wait
