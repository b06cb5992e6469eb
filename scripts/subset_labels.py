"""Write a seeded random subset of a dataset CSV (for runs that cannot afford the whole set).

Usage: python scripts/subset_labels.py LABELS.csv N --seed S --out SUBSET.csv

The subset keeps the source's row order; image paths are rewritten relative to the output CSV,
so it loads with `edge-iqa train --data SUBSET.csv` from anywhere. Deterministic given the seed.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from pathlib import Path

import numpy as np

from edge_iqa.data.datasets import read_labels
from edge_iqa.errors import EdgeIQAError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("labels", type=Path)
    parser.add_argument("count", type=int)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        labels = read_labels(args.labels)
    except EdgeIQAError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not 2 <= args.count <= len(labels):
        print(f"error: count must be between 2 and {len(labels)} (the images in {args.labels})", file=sys.stderr)
        return 2
    chosen = np.sort(np.random.default_rng(args.seed).permutation(len(labels))[: args.count])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    with tmp.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "mos"])
        for index in chosen:
            item = labels.items[int(index)]
            writer.writerow([os.path.relpath(item.path, args.out.parent), repr(item.mos)])
    tmp.replace(args.out)
    print(f"{args.out}: {len(chosen)} of {len(labels)} images (seed {args.seed})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
