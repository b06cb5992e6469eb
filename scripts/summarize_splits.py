"""Table of a multi-split evaluation from each run's metrics.json (docs/training.md).

Usage: python scripts/summarize_splits.py runs/clive_split0 runs/clive_split1 ...
Prints a Markdown table: per split the last epoch's model scored through the deployment path
(decode -> PreprocessSpec -> full network), then median / min / max over splits.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any

METRICS = ("srocc", "plcc", "plcc_logistic", "krcc", "rmse")


def load_runs(folders: list[str]) -> dict[int, dict[str, Any]]:
    """Each finished run's metrics.json by split seed (unfinished runs are skipped, with a note)."""
    runs = {}
    for folder in folders:
        path = Path(folder) / "metrics.json"
        if not path.is_file():
            print(f"(skipped {folder}: no metrics.json yet)", file=sys.stderr)
            continue
        data = json.loads(path.read_text())
        runs[int(data["split"]["split_seed"])] = data
    return runs


def deployment_metrics(run: dict[str, Any]) -> dict[str, float]:
    """The last epoch's model scored through the deployment path (feature-space validation if absent)."""
    return run.get("last_exact") or run["last"]["val"]


def main(folders: list[str]) -> None:
    rows = []
    for seed, data in load_runs(folders).items():
        best = (data.get("best") or {}).get("val", {})
        rows.append((seed, deployment_metrics(data), best.get("srocc"), data["seconds"]))
    print("| split seed | SROCC | PLCC | PLCC (logistic) | KRCC | RMSE | best-epoch SROCC* | run time (s) |")
    print("|---|---|---|---|---|---|---|---|")
    for seed, exact, best, seconds in rows:
        values = " | ".join(f"{exact[m]:.4f}" if m != "rmse" else f"{exact[m]:.2f}" for m in METRICS)
        best_text = f"{best:.4f}" if best is not None else "-"
        print(f"| {seed} | {values} | {best_text} | {seconds:.0f} |")
    if len(rows) > 1:
        for name, func in (("median", statistics.median), ("min", min), ("max", max)):
            values = " | ".join(
                f"{func([r[1][m] for r in rows]):.4f}" if m != "rmse" else f"{func([r[1][m] for r in rows]):.2f}"
                for m in METRICS)
            print(f"| **{name}** | {values} | {func([r[2] for r in rows if r[2] is not None]):.4f} | |")
    print(f"\n{len(rows)} split(s). *best-epoch SROCC is selected on the held-out set itself (optimistic); "
          "the other columns are the last epoch's model, which is what the recipe ships.")


if __name__ == "__main__":
    main(sys.argv[1:])
