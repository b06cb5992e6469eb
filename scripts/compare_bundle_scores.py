"""Do two bundles score the CLIVE evaluation photos alike? Bit for bit, or by how much they differ.

The re-validation of a change that must not move a score (a new input contract, a new manifest
version, a runtime change): each OLD=NEW pair is loaded with ``edge_iqa.runtime.load`` and scores
the 674 CLIVE development photos outside the shipped calibration set as one list (read-ahead and
list streams, the path a user's list takes) and the first ``--single`` one by one (the batch-1
latency set-up); the report says whether every score is identical and, if not, max |dscore| and
the SROCC against MOS of both.

    python scripts/compare_bundle_scores.py OLD=NEW [OLD=NEW ...] [--threads 2] [--single 48] [--json OUT]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # scripts.quantization_study (the evaluation photos)

from edge_iqa.bench.report import print_json_report  # noqa: E402
from edge_iqa.metrics import srocc  # noqa: E402
from edge_iqa.runtime import load  # noqa: E402
from scripts.quantization_study import evaluation_set  # noqa: E402


def compare(old: Path, new: Path, paths: list[Path], mos: np.ndarray, threads: int, single: int) -> dict:
    before, after = load(old, threads=threads), load(new, threads=threads)
    a, b = before.score(paths), after.score(paths)
    one_by_one = [(before.score_one(p), after.score_one(p)) for p in paths[:single]]
    return {"old": str(old), "new": str(new),
            "old_input": before.info["input_dtype"], "new_input": after.info["input_dtype"],
            "photos": len(paths), "identical": bool(np.array_equal(a, b)),
            "max_abs_dscore": float(np.abs(a - b).max()),
            "one_by_one_photos": len(one_by_one), "one_by_one_identical": all(x == y for x, y in one_by_one),
            "srocc_old": float(srocc(a, mos)), "srocc_new": float(srocc(b, mos))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pairs", nargs="+", metavar="OLD=NEW")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--single", type=int, default=48, help="photos also scored one by one (batch 1)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    paths, mos = evaluation_set(0)
    rows = []
    for pair in args.pairs:
        old, sep, new = pair.partition("=")
        if not sep:
            parser.error(f"{pair!r}: pass OLD=NEW bundle folders")
        rows.append(compare(Path(old), Path(new), paths, mos, args.threads, args.single))
    print_json_report({"command": "python scripts/compare_bundle_scores.py " + " ".join(sys.argv[1:]),
                       "pairs": rows}, args.json)


if __name__ == "__main__":
    main()
