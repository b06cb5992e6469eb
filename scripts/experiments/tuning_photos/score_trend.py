"""By hand (fifth session): is an INT8 bundle's error on the tuning photos a trend in the score (what an
affine score correction fitted on other photos would leave when it extrapolates) or a per-photo spread?
Signed INT8 - FP32 error per photo, its line against the FP32 score, and what is left after the line.

    python scripts/experiments/tuning_photos/score_trend.py LABELS_CSV EXCLUDE_LIST BUNDLE...

The photos: `quantization_study.py --photos labels` with 1,000 photos, seed 0.
"""

import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import quantization_study as study  # noqa: E402

from edge_iqa.export.parity import raw_scores, reference_scorer  # noqa: E402
from edge_iqa.export.staging import load_staged  # noqa: E402

CSV, EXCLUDE, BUNDLES = Path(sys.argv[1]), Path(sys.argv[2]), [Path(b) for b in sys.argv[3:]]
paths, _ = study.labelled_set(CSV, 1000, 0, EXCLUDE)
model, spec, scale = study.load_model_with_scale("edge_hybrid_n", False)
stacks = study.preprocess(paths, spec)
reference = raw_scores(reference_scorer(model, spec, ("image",)), stacks) * scale
with tempfile.TemporaryDirectory() as tmp:
    for i, bundle in enumerate(BUNDLES):
        error = raw_scores(load_staged(bundle, None, Path(tmp) / str(i), threads=1), stacks) * scale - reference
        slope, intercept = np.polyfit(reference, error, 1)
        left = error - (slope * reference + intercept)
        print(f"{bundle}: mean signed {error.mean():+.3f}, mean |d| {np.abs(error).mean():.3f}, "
              f"p99 {np.percentile(np.abs(error), 99):.2f}, max {np.abs(error).max():.2f}; line {slope:+.4f} x score "
              f"{intercept:+.3f}; after the line mean |d| {np.abs(left).mean():.3f}, p99 "
              f"{np.percentile(np.abs(left), 99):.2f}")
