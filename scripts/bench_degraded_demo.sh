#!/usr/bin/env bash
# Shows the regression check doing its job: ruin the ORT INT8 bundle's regression head (weights
# quantized to three levels, as a badly calibrated INT8 head would be) and bench it against the
# committed baseline. Expected: exit code 1 with REGRESSION lines. With the default ROWS only the
# degraded row runs (SROCC vs the baseline's); ROWS=pytorch/fp32,onnxruntime/int8 adds the PyTorch
# reference, so delta SROCC and distortion sensitivity are checked too (slower).
#
# Usage: scripts/bench_degraded_demo.sh [extra edge-iqa bench options, e.g. --checkpoint PATH]
# Needs the bundle of a previous `edge-iqa bench` run in $WORK (default: the bench's work dir).
set -uo pipefail
WORK=${WORK:-${TMPDIR:-/tmp}/edge-iqa-bench/quick}
BUNDLE=${BUNDLE:-$WORK/bundles/onnxruntime-int8}
OUT=${OUT:-$WORK/degraded-demo}
ROWS=${ROWS:-onnxruntime/int8}
LAYERS=${LAYERS:-8}       # weighted layers ternarized, walked back from the output (edge_hybrid_n: 6 are
                          # reachable; the trained model kept SROCC within the budget with only 1-4)
python -m edge_iqa.bench.degrade "$BUNDLE" "$OUT/bundle" --layers "$LAYERS"
edge-iqa bench --rows "$ROWS" --bundle "onnxruntime/int8=$OUT/bundle" \
  --suite bench/suite_quick.toml --work-dir "$WORK" --baseline bench/baselines/quick.json \
  --junit "$OUT/junit.xml" --out "$OUT/report" "$@"
code=$?
echo "edge-iqa bench exit code: $code (1 = regression detected, as intended)"
exit $(( code == 1 ? 0 : 1 ))
