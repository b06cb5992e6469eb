"""Soak: score tens of thousands of images with one bundle and record resident memory over time.

    python scripts/soak.py BUNDLE [--scores 20000] [--workers 1] [--threads 1] [--bad-every 10]
                          [--images DIR] [--sample-every 500] [--out soak.json]

Inputs cycle through real photos (``calibration_data/images``, or ``--images``) given as paths,
encoded bytes and decoded arrays, with a broken input (truncated JPEG, empty bytes, a PNG that
declares 20000x20000 pixels) every ``--bad-every`` scores, so error paths are soaked too. ``--workers N``
shares the one Scorer between N threads. A canary image is scored at the start and the end and must
get the same score. The summary (JSON, also written to ``--out``) gives RSS after the warm-up, at the
end, the peak, and the growth over the second half (a leak shows as steady growth there).

tests/test_reliability_load.py runs a short variant of :func:`soak` on a tiny bundle in CI; this
script is the long one (docs/reliability.md has the figures and commands).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import struct
import sys
import threading
import time
import zlib
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_IMAGES = REPO / "calibration_data" / "images"


def rss_bytes() -> int:
    """Current resident set size of this process (Linux /proc; psutil elsewhere)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        import psutil

        return int(psutil.Process().memory_info().rss)


def _png_declaring(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b""))


def make_inputs(photos: list[Path], decode_arrays: int = 8) -> tuple[list[Any], list[bytes]]:
    """(valid inputs: paths, bytes and arrays of the photos; broken inputs)."""
    from PIL import Image

    valid: list[Any] = []
    for index, path in enumerate(photos):
        if index % 3 == 0:
            valid.append(path)
        elif index % 3 == 1:
            valid.append(path.read_bytes())
        elif index < 3 * decode_arrays:
            with Image.open(path) as img:
                valid.append(np.asarray(img.convert("RGB")))
        else:
            valid.append(str(path))
    jpeg = photos[0].read_bytes()
    broken = [jpeg[: len(jpeg) // 2], b"", _png_declaring(20000, 20000), b"not an image at all"]
    return valid, broken


def soak(scorer: Any, valid: list[Any], broken: list[bytes], scores: int, *, workers: int = 1, bad_every: int = 10,
         warmup: int = 200, sample_every: int = 250) -> dict[str, Any]:
    """Score ``scores`` inputs (after ``warmup``), sampling RSS; returns the summary."""
    import gc

    from edge_iqa.errors import EdgeIQAError, ImageError

    canary = valid[0]
    canary_score = scorer.score_one(canary)
    stream = itertools.cycle(range(len(valid)))
    lock = threading.Lock()
    counts = {"scores": 0, "typed_errors": 0, "bad_accepted": 0, "other_errors": 0, "non_finite": 0}
    samples: list[tuple[int, int]] = []

    def next_item(i: int) -> tuple[Any, bool]:
        if bad_every and i % bad_every == bad_every - 1:
            return broken[(i // bad_every) % len(broken)], True
        with lock:
            return valid[next(stream)], False

    def run(count: int, record: bool) -> None:
        done = itertools.count()

        def worker() -> None:
            while (i := next(done)) < count:
                item, bad = next_item(i)
                try:
                    value = scorer.score_one(item)
                except ImageError:
                    outcome, value = ("typed_errors" if bad else "other_errors"), 0.0
                except EdgeIQAError:
                    outcome, value = "other_errors", 0.0
                else:
                    outcome = "bad_accepted" if bad else "scores"
                with lock:
                    counts[outcome] += 1
                    counts["non_finite"] += not math.isfinite(value)
                    if record and (i + 1) % sample_every == 0:
                        samples.append((i + 1, rss_bytes()))
                        print(f"{i + 1} scores, RSS {samples[-1][1] / 2**20:.1f} MiB", file=sys.stderr, flush=True)

        threads = [threading.Thread(target=worker) for _ in range(workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    run(warmup, record=False)
    gc.collect()
    counts.update({k: 0 for k in counts})
    rss_start = rss_bytes()
    samples.append((0, rss_start))
    start = time.perf_counter()
    run(scores, record=True)
    wall = time.perf_counter() - start
    gc.collect()
    rss_end = rss_bytes()
    samples.sort()
    half = [s for s in samples if s[0] >= scores // 2]
    slope = float(np.polyfit([s[0] for s in half], [s[1] for s in half], 1)[0]) if len(half) > 2 else 0.0
    return {
        "scores_requested": scores, **counts, "workers": workers, "wall_s": round(wall, 2),
        "scores_per_s": round(scores / wall, 1),
        "rss_after_warmup_mib": round(rss_start / 2**20, 1), "rss_end_mib": round(rss_end / 2**20, 1),
        "rss_peak_mib": round(max(s[1] for s in samples) / 2**20, 1),
        "growth_mib": round((rss_end - rss_start) / 2**20, 2),
        "growth_second_half_mib": round((rss_end - half[0][1]) / 2**20, 2) if half else 0.0,
        "slope_kib_per_1000_scores_second_half": round(slope * 1000 / 1024, 2),
        "canary_unchanged": scorer.score_one(canary) == canary_score,
        "samples": [(n, round(r / 2**20, 1)) for n, r in samples],
    }


def photos_in(folder: Path, limit: int) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png", ".webp", ".bmp"})
    if not files:
        raise SystemExit(f"no photos in {folder}")
    return files[:limit]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--scores", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=1, help="threads sharing one Scorer")
    parser.add_argument("--threads", type=int, default=1, help="backend intra-op threads")
    parser.add_argument("--bad-every", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--sample-every", type=int, default=500)
    parser.add_argument("--images", type=Path, default=DEFAULT_IMAGES)
    parser.add_argument("--photos", type=int, default=64, help="distinct photos to cycle through")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)

    from edge_iqa.runtime import load

    scorer = load(args.bundle, threads=args.threads)
    valid, broken = make_inputs(photos_in(args.images, args.photos))
    summary = {"bundle": str(args.bundle), "model": scorer.info.get("model"), "runtime": scorer.info["runtime"],
               "precision": scorer.info["precision"],
               **soak(scorer, valid, broken, args.scores, workers=args.workers, bad_every=args.bad_every,
                      warmup=args.warmup, sample_every=args.sample_every)}
    text = json.dumps(summary, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    ok = summary["other_errors"] == 0 and summary["bad_accepted"] == 0 and summary["non_finite"] == 0 \
        and summary["canary_unchanged"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
