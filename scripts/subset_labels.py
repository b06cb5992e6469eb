"""Write a seeded random subset of a dataset CSV, or one part of a training run's seeded split.

Usage:
    python scripts/subset_labels.py LABELS.csv N --seed S --out SUBSET.csv      # N random images
    python scripts/subset_labels.py LABELS.csv --split-part val --val-fraction 0.2 --split-seed 0 --out VAL.csv

The second form writes exactly the images `edge-iqa train --data LABELS.csv --val-fraction F
--split-seed S` holds out (or trains on, `--split-part train`), e.g. to score another model on
the same validation images.

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

from edge_iqa.data.datasets import read_labels, train_val_split
from edge_iqa.errors import EdgeIQAError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("labels", type=Path)
    parser.add_argument("count", type=int, nargs="?", help="random subset of this many images")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--split-part", choices=["train", "val"], help="a run's split part instead of a subset")
    parser.add_argument("--val-fraction", type=float, default=0.2)
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        labels = read_labels(args.labels)
    except EdgeIQAError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if (args.count is None) == (args.split_part is None):
        print("error: give either N (a random subset) or --split-part train|val", file=sys.stderr)
        return 2
    if args.split_part is not None:
        try:
            parts = train_val_split(len(labels), args.val_fraction, args.split_seed)
        except EdgeIQAError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        chosen = parts[0] if args.split_part == "train" else parts[1]
    elif not 2 <= args.count <= len(labels):
        print(f"error: count must be between 2 and {len(labels)} (the images in {args.labels})", file=sys.stderr)
        return 2
    else:
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
    how = f"split seed {args.split_seed}, {args.split_part} part" if args.split_part else f"seed {args.seed}"
    print(f"{args.out}: {len(chosen)} of {len(labels)} images ({how})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
