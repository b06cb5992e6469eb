#!/usr/bin/env bash
# After new default weights are installed (python scripts/install_default_weights.py RUN [SPLIT_RUN ...]),
# regenerate and check everything in the repository that is derived from the embedded weights.
# Run from the repository root; each step is one command and can be run alone:
#
#   scripts/refresh_after_weights.sh tests   # the tests that read the embedded weights (minutes)
#   scripts/refresh_after_weights.sh quick   # bench/reports/quick + bench/baselines/quick.json
#   scripts/refresh_after_weights.sh full    # bench/reports/full + bench/baselines/full.json: exports every
#                                            # bundle, scores CLIVE and the BIQ2021 Test split (the one-time
#                                            # Test scoring of these weights; refused if already done)
#   scripts/refresh_after_weights.sh         # all three, in this order
#
# What depends on the embedded weights, and what does not (docs/training.md, "Swapping the default model"):
#   regenerated here: bench/reports/{quick,full}/ (report.json/.md/.html, pareto.png, sensitivity.png,
#     junit.xml) and bench/baselines/{quick,full}.json (each written by its own suite);
#   written by install_default_weights.py: edge_iqa/weights/{edge_hybrid_n.safetensors,.json,README.md} and
#     the datasets' notices;
#   not derived from the weights: calibration_data/ (a fixed seeded sample of CLIVE images),
#     tests/fixtures/reference/*_golden.json (the seed models' deterministic weights), targets/*.toml;
#   measured on the previous weights, same network (re-measure only if the architecture changed):
#     bench/reports/speed/ (issue 13), bench/reports/native/ (issue 15), bench/reports/collection/;
#   by hand afterwards: the figures quoted in README.md, docs/benchmarks.md and docs/training.md.
#
# Run it with the project's environment active (`python` and `edge-iqa` on PATH; or
# PYTHON=.venv/bin/python PATH=$PWD/.venv/bin:$PATH). Environment: EDGE_IQA_BIQ2021 (prepared BIQ2021
# folder; default ../data/biq2021), WORK (bench work folder, shared by both suites; default
# /tmp/edge-iqa-refresh/<sha256 of the weights, 12 chars>), NICE (niceness of every step; default 10 on
# a shared machine, 0 for the timed benchmark of record), FORCE_TEST_SCORING=1 (score the BIQ2021 Test
# split again with the same weights: only to recover from a failed run, and say so in the docs).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
# One work folder per installed weights: the quick and full suites export the same six bundles, so the
# second suite reuses the first one's (--reuse-bundles), and bundles of other weights can never be reused.
WEIGHTS_SHA=$("$PY" -c "from edge_iqa.bench.once import embedded_weights_sha256 as s; print(s()[:12])")
WORK=${WORK:-/tmp/edge-iqa-refresh/$WEIGHTS_SHA}
NICE=${NICE:-10}
run() { echo "+ $*" >&2; nice -n "$NICE" "$@"; }
# edge-iqa bench exits 1 when a check fails (the report and junit.xml say which; they are the result
# to commit and discuss, not a reason to stop) and 2 for a bad suite or missing data (stop).
bench() { local code=0; run edge-iqa bench "$@" || code=$?
  [ "$code" -eq 1 ] && echo "edge-iqa bench: checks failed (see the report's Regression check)" >&2
  [ "$code" -le 1 ]; }
stamp() { echo "[$(date -u +%H:%M:%S)] $* (load average: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo n/a))" >&2; }

step_tests() {
  stamp "tests that read the embedded weights"
  # Metadata, notices, README and label hashes of the embedded weights; the install script itself;
  # the bench's sets and baselines; the packaged model scoring CLIVE; parity of the default model's
  # bundles (OpenVINO mixed precision on the real model, slow).
  run "$PY" -m pytest -q tests/test_checkpoint.py tests/test_install_weights.py tests/test_bench_sets.py \
    tests/test_bench_suite.py tests/test_runtime_torch_backend.py
  run "$PY" -m pytest -q -m slow tests/test_accuracy_control.py -k default_model
  if [ -n "${EDGE_IQA_NATIVE_BUILD:-}" ]; then
    run "$PY" -m pytest -q tests/test_native_runtime.py -k default_model
  else
    echo "native runtime parity on the default model skipped: set EDGE_IQA_NATIVE_BUILD (see .ci/run)" >&2
  fi
}

step_quick() {
  stamp "quick suite (CLIVE, 64 images): report + its own baseline"
  bench --suite bench/suite_quick.toml --out bench/reports/quick --work-dir "$WORK" --reuse-bundles \
    --junit bench/reports/quick/junit.xml --update-baseline
}

step_full() {
  stamp "full suite (CLIVE 674 images + BIQ2021 Test 2,000 images): report + its own baseline"
  # The BIQ2021 Test split is scored once per model: refuse when the committed full report already
  # holds Test figures of the very weights installed now.
  "$PY" -m edge_iqa.bench.once bench/reports/full/report.json biq2021-test || {
    [ "${FORCE_TEST_SCORING:-0}" = 1 ] || { echo "(FORCE_TEST_SCORING=1 only to recover a failed run)" >&2; exit 1; }; }
  test -f "${EDGE_IQA_BIQ2021:-../data/biq2021}/test.csv" || {
    echo "error: ${EDGE_IQA_BIQ2021:-../data/biq2021}/test.csv is absent: prepare BIQ2021 first" \
         "(git clone https://github.com/nisarahmedrana/BIQ2021 ../data/biq2021;" \
         "python scripts/prepare_biq2021.py ../data/biq2021) or set EDGE_IQA_BIQ2021" >&2; exit 2; }
  bench --suite bench/suite.toml --out bench/reports/full --work-dir "$WORK" --reuse-bundles \
    --junit bench/reports/full/junit.xml --update-baseline
}

steps=("$@")
[ ${#steps[@]} -eq 0 ] && steps=(tests quick full)
for step in "${steps[@]}"; do
  case "$step" in
    tests|quick|full) "step_$step"; stamp "$step done" ;;
    *) echo "unknown step $step: use tests, quick or full" >&2; exit 2 ;;
  esac
done
git status --short -- bench/reports bench/baselines edge_iqa/weights
