#!/usr/bin/env bash
# The evaluation protocol and the shipped model, as run for docs/training.md:
#   - the default recipe (`edge-iqa train` defaults) on 5 seeded 80/20 splits of the 930 CLIVE images
#   - the same recipe on all 930 images -> edge_iqa/weights/edge_hybrid_n.*
# Runs are independent (1 torch thread each) and share the stem cache in runs/stem_cache;
# build it first (the first run does) so parallel runs do not all compute it.
# Usage: scripts/clive_protocol.sh   then   python scripts/summarize_splits.py runs/clive_split{0,1,2,3,4}
set -euo pipefail
DATA=${DATA:-../shared/datasets/clive/labels.csv}
split() { edge-iqa train --model edge_hybrid_n --data "$DATA" --out "runs/clive_split$1" --split-seed "$1" \
            --seed 0 --val-fraction 0.2 --threads 1 > "runs/clive_split$1.log" 2>&1; }
final() { edge-iqa train --model edge_hybrid_n --data "$DATA" --out runs/clive_all930 --seed 0 \
            --val-fraction 0 --threads 1 > runs/clive_all930.log 2>&1; }
mkdir -p runs
final &
(split 0; split 1) &
(split 2; split 3) &
split 4 &
wait
