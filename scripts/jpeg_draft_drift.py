"""What decoding large JPEGs at a reduced DCT scale would buy and cost (issue 13): for each photo whose shorter
side is at least 768 pixels, decode + preprocessing time and the bundle's score, with the runtime's full decode
(`load_image`) and with libjpeg's DCT-domain downscaling (Pillow's `draft`: 1/2, 1/4 or 1/8 scale, the largest
that keeps both sides at least FACTOR x the bundle's resize target), then the same resize and crop.

    python scripts/jpeg_draft_drift.py FOLDER --bundle NAME=BUNDLE [--bundle ...] [--factors 1 2 3] [--json OUT]

Not used by the runtime: its scores would change for exactly the photos this speeds up (docs/benchmarks.md).
Figures: median ms per photo (decode + preprocessing, 1 thread, wall), signed and absolute score differences
draft - full in MOS points over the photos the draft actually reduced and over all photos.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

import edge_iqa.runtime
from edge_iqa.bench.report import print_json_report
from edge_iqa.data.imageio import load_image

MIN_SIDE = 768


def draft_decode(path: Path, side: int) -> np.ndarray:
    """Decoded at the smallest DCT scale that keeps both sides >= ``side`` (Pillow's draft), EXIF applied."""
    with Image.open(path) as image:
        image.draft("RGB", (side, side))
        return np.asarray(ImageOps.exif_transpose(image).convert("RGB"))


def timed(fn, *args):
    start = time.perf_counter()
    value = fn(*args)
    return value, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--bundle", action="append", required=True, metavar="NAME=DIR")
    parser.add_argument("--factors", type=float, nargs="+", default=[1.0, 2.0, 3.0])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    paths = []
    for path in sorted(args.folder.iterdir()):
        if path.suffix.lower() in (".jpg", ".jpeg"):
            with Image.open(path) as image:
                if min(image.size) >= MIN_SIDE:
                    paths.append((path, image.size))
    report = {"photos": len(paths), "folder": str(args.folder), "min_side": MIN_SIDE, "rows": {},
              "loadavg_before": Path("/proc/loadavg").read_text().split()[:3]}
    for entry in args.bundle:
        name, _, folder = entry.partition("=")
        scorer = edge_iqa.runtime.load(folder, threads=1)
        spec = scorer.spec
        target = spec.resize_to or min(spec.input_size)
        full, full_ms = [], []
        for path, _ in paths:
            pixels, seconds = timed(lambda p, spec=spec: spec.pixels(load_image(p)), path)
            full_ms.append(seconds * 1e3)
            full.append(scorer.score_tensor(pixels)[0])
        row = {"full_decode_ms": round(statistics.median(full_ms), 2)}
        for factor in args.factors:
            side = int(round(factor * target))
            drift, draft_ms, reduced = [], [], []
            for (path, size), full_score in zip(paths, full, strict=True):
                decoded, seconds = timed(draft_decode, path, side)
                pixels, more = timed(spec.pixels, decoded)
                draft_ms.append((seconds + more) * 1e3)
                reduced.append(max(decoded.shape[:2]) < max(size))
                drift.append(scorer.score_tensor(pixels)[0] - full_score)
            drift_all = np.array(drift)
            drift_reduced = drift_all[np.array(reduced)]
            row[f"draft_at_{factor:g}x_target"] = {
                "side": side, "photos_reduced": int(len(drift_reduced)),
                "decode_ms": round(statistics.median(draft_ms), 2),
                "speedup": round(statistics.median(full_ms) / statistics.median(draft_ms), 2),
                "signed_mean_reduced": round(float(drift_reduced.mean()), 3) if len(drift_reduced) else None,
                "abs_mean_reduced": round(float(np.abs(drift_reduced).mean()), 3) if len(drift_reduced) else None,
                "abs_max": round(float(np.abs(drift_all).max()), 3)}
        report["rows"][name] = row
    report["loadavg_after"] = Path("/proc/loadavg").read_text().split()[:3]
    report["command"] = ("python scripts/jpeg_draft_drift.py FOLDER " + " ".join(f"--bundle {b}" for b in args.bundle)
                         + " --factors " + " ".join(f"{f:g}" for f in args.factors))
    print_json_report(report, args.json)


if __name__ == "__main__":
    main()
