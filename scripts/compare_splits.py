"""With vs. without: two multi-split evaluations side by side, from each run's metrics.json.

Usage: python scripts/compare_splits.py runs/clive_split{0,1,2,3,4} -- runs/clive_synthinit_split{0,1,2,3,4}
Runs are paired by split seed. Prints a Markdown table of the last epoch's model scored through the
deployment path (``last_exact``: SROCC, PLCC) per split, the difference, the medians over the
splits both sides finished, and the decision rule of docs/synthetic_data.md: keep the second
recipe only if its median SROCC is higher.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from summarize_splits import deployment_metrics, load_runs  # noqa: E402  (a sibling script)


def main(argv: list[str]) -> None:
    if "--" not in argv:
        sys.exit("usage: compare_splits.py BASELINE_RUN... -- OTHER_RUN...")
    cut = argv.index("--")
    base, other = load_runs(argv[:cut]), load_runs(argv[cut + 1:])
    seeds = sorted(set(base) & set(other))
    if not seeds:
        sys.exit("no split seed finished on both sides")
    print("| split seed | SROCC without | SROCC with | Δ SROCC | PLCC without | PLCC with | Δ PLCC | "
          "run time with (s) |")
    print("|---|---|---|---|---|---|---|---|")
    for seed in seeds:
        a, b = deployment_metrics(base[seed]), deployment_metrics(other[seed])
        print(f"| {seed} | {a['srocc']:.4f} | {b['srocc']:.4f} | {b['srocc'] - a['srocc']:+.4f} | "
              f"{a['plcc']:.4f} | {b['plcc']:.4f} | {b['plcc'] - a['plcc']:+.4f} | {other[seed]['seconds']:.0f} |")
    med = {side: {m: statistics.median(deployment_metrics(runs[s])[m] for s in seeds) for m in ("srocc", "plcc")}
           for side, runs in (("base", base), ("other", other))}
    print(f"| **median** | {med['base']['srocc']:.4f} | {med['other']['srocc']:.4f} | "
          f"{med['other']['srocc'] - med['base']['srocc']:+.4f} | {med['base']['plcc']:.4f} | "
          f"{med['other']['plcc']:.4f} | {med['other']['plcc'] - med['base']['plcc']:+.4f} | |")
    missing = sorted(set(base) ^ set(other))
    print(f"\n{len(seeds)} split(s) on both sides" + (f"; not paired: {missing}" if missing else "") + ".")
    helps = med["other"]["srocc"] > med["base"]["srocc"]
    print("Decision (keep only if the median SROCC improves): " + ("keep" if helps else "do not keep") + ".")


if __name__ == "__main__":
    main(sys.argv[1:])
