"""Export a suite's bundles into the bench work dir ahead of `edge-iqa bench --reuse-bundles`.

Lets exporting overlap with other work on a busy machine; the bundles are exactly what
`edge-iqa bench` would export itself (same `export_bundle` call, same folder names). Existing
bundles are kept.

    python scripts/bench_export.py --suite bench/suite_quick.toml --checkpoint W.safetensors --work-dir DIR
    edge-iqa bench --suite bench/suite_quick.toml --checkpoint W.safetensors --work-dir DIR --reuse-bundles
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from edge_iqa.bench.runner import Plan, default_work_dir, export_row, plan_rows, prepare_weights
from edge_iqa.bench.suite import load_suite


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", type=Path, default=None)
    parser.add_argument("--checkpoint", type=Path, default=None)
    parser.add_argument("--work-dir", type=Path, default=None)
    args = parser.parse_args()
    suite = load_suite(args.suite)
    if args.checkpoint:
        suite = suite.with_overrides(checkpoint=args.checkpoint)
    work_dir = args.work_dir or default_work_dir(suite)
    checkpoint = prepare_weights(suite, work_dir)
    plans: list[Plan] = [p for p in plan_rows(suite) if p.kind == "bundle"]
    for plan in plans:
        start = time.perf_counter()
        try:
            bundle, _ = export_row(suite, plan, checkpoint, work_dir, reuse=True)
            print(f"{plan.row_id}: {bundle} ({time.perf_counter() - start:.0f} s)", flush=True)
        except Exception as exc:  # noqa: BLE001 - the bench records the error row when it retries
            print(f"{plan.row_id}: ERROR {type(exc).__name__}: {exc}", flush=True)


if __name__ == "__main__":
    main()
