"""CPU time of each stage of file -> score, one thread: decode, resize, the network's input rows, network.

The rows are float32 normalised rows, or the crops' uint8 pixels for a bundle whose network takes
pixels (manifest schema 2).

CPU time (``time.process_time``, every thread of the process) instead of wall time, so that a busy
machine changes the figures little; one intra-op thread, so no runtime spin-waits in them. Says
which share of a photo's CPU cost preprocessing has, e.g. whether feeding the network uint8 pixels
(normalisation inside the network) would be worth a new preprocessing contract.

    python scripts/stage_cpu_time.py BUNDLE [--images DIR] [--count 48] [--rounds 2] [--json OUT]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from edge_iqa.bench.report import print_json_report

REPO = Path(__file__).resolve().parents[1]
DEFAULT_IMAGES = REPO.parent / "shared" / "datasets" / "clive" / "images"
STAGES = ("decode", "resize", "to_tensor", "network")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--images", type=Path, default=DEFAULT_IMAGES)
    parser.add_argument("--count", type=int, default=48)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    from edge_iqa.data.imageio import load_image
    from edge_iqa.runtime import load

    paths = sorted(p for p in args.images.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".bmp"))
    paths = paths[: args.count]
    scorer = load(args.bundle, threads=1, prefetch=0)
    spec = scorer.spec
    load_before = Path("/proc/loadavg").read_text().split()[:3]
    spent: dict[str, list[float]] = {stage: [] for stage in STAGES}
    for _ in range(args.rounds):
        for path in paths:
            marks = [time.process_time()]
            image = load_image(path)
            marks.append(time.process_time())
            resized = spec.resize_image(image)
            marks.append(time.process_time())
            rows = spec.crops(resized) if scorer.takes_pixels else spec.to_tensor_batch(resized)
            marks.append(time.process_time())
            scorer.backend.run(rows)
            marks.append(time.process_time())
            for stage, start, end in zip(STAGES, marks, marks[1:], strict=False):
                spent[stage].append((end - start) * 1e3)
    mean_ms = {stage: statistics.fmean(values) for stage, values in spent.items()}
    total = sum(mean_ms.values())
    print_json_report({
        "bundle": str(args.bundle), "images": len(paths), "rounds": args.rounds, "threads": 1,
        "cpu_ms_per_image": mean_ms, "share": {stage: ms / total for stage, ms in mean_ms.items()},
        "total_cpu_ms_per_image": total, "loadavg_before": load_before,
        "loadavg_after": Path("/proc/loadavg").read_text().split()[:3],
        "command": f"python scripts/stage_cpu_time.py {args.bundle} --count {args.count} --rounds {args.rounds}",
    }, args.json)


if __name__ == "__main__":
    main()
