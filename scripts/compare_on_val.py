"""Paired comparison of a training run's model with a reference model on the run's own validation images.

Usage:
    python scripts/compare_on_val.py RUN_DIR [--checkpoint last|best] [--reference NAME.safetensors]
        [--threads N] [--out RUN_DIR/compare_on_val.json]

RUN_DIR is an `edge-iqa train` output folder. Its metrics.json gives the --data files, --val-fraction
and --split-seed; the validation images are re-derived with the very split code the run used
(`edge_iqa.train.multi.seeded_splits`), so both models are scored on the SAME images, per dataset,
through the deployment path (`TorchScorer`: decode -> spec -> full network). The reference defaults
to the embedded `edge_hybrid_n`. For each dataset: both models' SROCC/PLCC, the paired difference
(run minus reference) and its 95 % percentile bootstrap interval over resampled images (1,000
resamples, seed 0). Caveat the output states: a reference trained on some of these images (the
embedded model saw all 930 CLIVE development photos) is favoured on them.
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
from edge_iqa.metrics import plcc, srocc
from edge_iqa.predict import TorchScorer
from edge_iqa.train.multi import combine, seeded_splits


def paired_difference(run: np.ndarray, reference: np.ndarray, mos: np.ndarray, seed: int = 0,
                      resamples: int = 1000) -> dict[str, list[float] | float]:
    """Run minus reference SROCC and PLCC on the same images, with percentile bootstrap intervals."""
    rng = np.random.default_rng(seed)
    out: dict[str, list[float] | float] = {}
    for name, metric in (("srocc", srocc), ("plcc", plcc)):
        diffs = []
        for _ in range(resamples):
            idx = rng.integers(0, len(mos), len(mos))
            diffs.append(metric(run[idx], mos[idx]) - metric(reference[idx], mos[idx]))
        out[f"d_{name}"] = round(metric(run, mos) - metric(reference, mos), 6)
        out[f"d_{name}_ci95"] = [round(float(np.percentile(diffs, q)), 6) for q in (2.5, 97.5)]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="an `edge-iqa train` --out folder (with metrics.json)")
    parser.add_argument("--checkpoint", default="last", choices=["last", "best"])
    parser.add_argument("--reference", type=Path, help="reference checkpoint (default: embedded edge_hybrid_n)")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--out", type=Path, help="JSON result (default: RUN/compare_on_val.json)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        config = json.loads((args.run / "metrics.json").read_text())["config"]
        paths = config["data"] if isinstance(config["data"], list) else [config["data"]]
        fractions = config["val_fraction"] if isinstance(config["val_fraction"], list) else [config["val_fraction"]]
        files = [read_labels(p, config.get("image_root")) for p in paths]
        data = combine(files, seeded_splits(files, [float(f) for f in fractions], int(config["split_seed"])))
        run_scorer = TorchScorer.from_checkpoint(args.run / f"{args.checkpoint}.safetensors")
        ref_scorer = TorchScorer.from_checkpoint(args.reference) if args.reference else \
            TorchScorer.from_name("edge_hybrid_n")
        result: dict[str, object] = {
            "run": str(args.run.resolve()), "checkpoint": f"{args.checkpoint}.safetensors",
            "reference": str(args.reference.resolve()) if args.reference else "embedded edge_hybrid_n",
            "caveat": "a reference trained on some of these images is favoured on them (the embedded "
                      "edge_hybrid_n was trained on all 930 CLIVE development photos)",
            "datasets": {},
        }
        for part in data.parts:
            images = [data.labels.items[int(i)].path for i in part.val_idx]
            mos = data.labels.mos[part.val_idx]
            run_scores, ref_scores = run_scorer.score(images), ref_scorer.score(images)
            result["datasets"][part.mapping.name] = {
                "images": len(images),
                "run": {"srocc": round(srocc(run_scores, mos), 6), "plcc": round(plcc(run_scores, mos), 6)},
                "reference": {"srocc": round(srocc(ref_scores, mos), 6), "plcc": round(plcc(ref_scores, mos), 6)},
                **paired_difference(run_scores, ref_scores, mos),
            }
            print(part.mapping.name, json.dumps(result["datasets"][part.mapping.name]), flush=True)
    except (EdgeIQAError, OSError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    result["wall_seconds"] = round(time.perf_counter() - wall, 1)
    result["cpu_seconds"] = round(time.process_time() - cpu, 1)
    result["max_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    out = args.out or args.run / "compare_on_val.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
