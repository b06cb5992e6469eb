"""Score a labelled dataset with a checkpoint through the deployment path and print SROCC/PLCC.

Usage:
    python scripts/evaluate_checkpoint.py LABELS.csv [--checkpoint NAME.safetensors] [--out result.json]

Without --checkpoint the embedded default (`edge_hybrid_n`) is scored. Images are decoded, the
model's PreprocessSpec is applied and the full network runs (`TorchScorer`, exactly what
`edge-iqa score` does); SROCC/KRCC are scale-free, PLCC is computed on the raw scores and after the
usual logistic fit. This is how the BIQ2021 Test split is scored -- once, for the shipped model.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

from edge_iqa.data.datasets import read_labels
from edge_iqa.errors import EdgeIQAError
from edge_iqa.metrics import evaluate
from edge_iqa.predict import TorchScorer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("labels", type=Path, help="dataset CSV (image,mos) to score")
    parser.add_argument("--checkpoint", type=Path, help="NAME.safetensors with NAME.json (default: embedded weights)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    parser.add_argument("--out", type=Path, help="write the result as JSON here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        labels = read_labels(args.labels)
        scorer = TorchScorer.from_checkpoint(args.checkpoint) if args.checkpoint else \
            TorchScorer.from_name("edge_hybrid_n")
        wall, cpu = time.perf_counter(), time.process_time()
        scores = scorer.score(labels.paths)
    except EdgeIQAError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    metrics = evaluate(scores, labels.mos).to_dict()
    result = {
        "labels": str(args.labels.resolve()), "images": len(labels),
        "checkpoint": str(args.checkpoint.resolve()) if args.checkpoint else "embedded edge_hybrid_n",
        "metrics": {k: round(float(v), 6) for k, v in metrics.items()},
        "score_range": [float(np.min(scores)), float(np.max(scores))],
        "wall_seconds": round(time.perf_counter() - wall, 1), "cpu_seconds": round(time.process_time() - cpu, 1),
        "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "torch": torch.__version__,
    }
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
