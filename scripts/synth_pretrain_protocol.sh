#!/usr/bin/env bash
# Does pre-training on synthetic data help? (docs/synthetic_data.md, "Pre-training on it: measured")
#   1. synthetic set: the 177 pristine photos, 15 random (type, level) pairs each, FR-fallback labels
#   2. pre-train the default recipe on it (10 % held out; the best epoch is the init)
#   3. fine-tune on the 5 CLIVE splits of scripts/clive_protocol.sh with --init, all else identical
# Then: python scripts/compare_splits.py runs/clive_split{0..4} -- runs/clive_synthinit_split{0..4}
# Every step is 1 torch thread; CPU/wall times go to runs/NAME.time (GNU time).
# Usage: NICE=19 JOBS=2 scripts/synth_pretrain_protocol.sh
set -euo pipefail
NICE=${NICE:-5}
JOBS=${JOBS:-2}
PER_REF=${PER_REF:-15}
CLIVE=${CLIVE:-../shared/datasets/clive/labels.csv}
export OMP_NUM_THREADS=1
timed() { local name=$1; shift; nice -n "$NICE" /usr/bin/time -f "%U user %S sys %e wall" -o "runs/$name.time" "$@"; }
mkdir -p runs
if [ ! -f runs/synth_pristine/synth.csv ]; then
  timed synth_pristine edge-iqa synth --refs ../shared/datasets/pristine/images --out runs/synth_pristine \
      --per-ref "$PER_REF" --seed 0 > runs/synth_pristine.log 2>&1
fi
if [ ! -f runs/synth_pretrain/metrics.json ]; then
  timed synth_pretrain edge-iqa train --model edge_hybrid_n --data runs/synth_pristine/synth.csv \
      --out runs/synth_pretrain --val-fraction 0.1 --seed 0 --threads 1 > runs/synth_pretrain.log 2>&1
fi
finetune() {
  timed "clive_synthinit_split$1" edge-iqa train --model edge_hybrid_n --data "$CLIVE" \
      --out "runs/clive_synthinit_split$1" --split-seed "$1" --seed 0 --val-fraction 0.2 --threads 1 \
      --init runs/synth_pretrain/best.safetensors > "runs/clive_synthinit_split$1.log" 2>&1
}
for seed in 0 1 2 3 4; do
  [ -f "runs/clive_synthinit_split$seed/metrics.json" ] && continue
  while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do sleep 5; done
  finetune "$seed" &
done
wait
