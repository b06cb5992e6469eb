import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[3]
sys.path[:0] = [str(REPO), str(REPO / "scripts")]
import quantization_study as q  # noqa: E402

from edge_iqa.export.parity import raw_scores, reference_scorer  # noqa: E402
from edge_iqa.export.staging import load_staged  # noqa: E402

model, spec, scale = q.load_model_with_scale("edge_hybrid_n", False, None)
paths, mos = q.validation_set()
stacks = q.preprocess(paths, spec)
ref = raw_scores(reference_scorer(model, spec, ("image",)), stacks)  # PyTorch FP32, as the study computes it
D = {}
with tempfile.TemporaryDirectory() as t:
    for b in sys.argv[1:]:
        s = raw_scores(load_staged(Path(b), None, Path(t) / Path(b).name, threads=1), stacks)
        d = (s - ref) * scale
        D[b] = d
        o = np.argsort(-np.abs(d))[:6]
        print(f"mean|d| {np.abs(d).mean():.3f} p99 {np.percentile(np.abs(d), 99):.3f} max {np.abs(d).max():.3f}")
        print(
            b,
            f"signed mean {d.mean():.3f} sd {d.std():.3f}",
            "worst",
            np.round(d[o], 2),
            [paths[i].name for i in o],
            "fp32",
            np.round(ref[o] * scale, 1),
        )

ks = list(D)
print(np.round(np.corrcoef([D[k] for k in ks]), 2))
