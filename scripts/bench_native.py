"""Native runtime (libedgeiqa) against the Python runtime (edge_iqa.runtime) on the same bundle and frames.

    python scripts/bench_native.py BUNDLE [BUNDLE...] [--build build/native] [--images 32] [--rounds 6]
        [--startup-runs 5] [--out bench/reports/native_runtime.json]

1. Inference, in ONE process, alternating: per-frame latency of ``NativeScorer.score`` (C API through
   ctypes) and ``Scorer.score_one`` on the same decoded RGB frames (batch 1, intra-op threads 2), the
   order of the two rotated every round; wall time per frame, frames/s, and CPU seconds per frame
   (``time.process_time``: every thread of the process, so OpenVINO's workers count).
   Also the preprocessing alone (frame -> network input tensor) of each side.
2. Start-up and memory, fresh processes, alternating: ``score_frames --timing`` (open, first frame,
   peak RSS) against ``scripts/runtime_startup.py --child`` (import + load, first score, peak RSS), both
   with a warm OpenVINO compiled-model cache (``cache_dir``) and without one.

The machine is shared (a training job runs): the load average is recorded before and after; compare
the two rows of a run, not runs of different days.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from edge_iqa.bench.native import NativeScorer
from edge_iqa.data.imageio import load_image
from edge_iqa.runtime import load

REPO = Path(__file__).resolve().parents[1]
IMAGES = REPO / "calibration_data" / "images"
TIMING = re.compile(r"open ([\d.]+) s, first frame done ([\d.]+) s, total ([\d.]+) s, max RSS ([\d.]+) MB, "
                    r"RSS ([\d.]+) MB")


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "mean": statistics.fmean(values), "min": min(values),
            "max": max(values)}


def inference(bundle: Path, build: Path, frames: list[np.ndarray], rounds: int, threads: int) -> dict:
    python = load(bundle, threads=threads, backend_options={"cache_dir": None})
    native = NativeScorer.open(build, bundle, threads=threads, cache_dir="")
    runners = {"native": native.score, "python": python.score_one}
    for frame in frames[:3]:  # first inferences allocate: not measured
        for run in runners.values():
            run(frame)
    wall: dict[str, list[float]] = {name: [] for name in runners}
    cpu: dict[str, list[float]] = {name: [] for name in runners}
    diffs = []
    for r in range(rounds):
        order = list(runners) if r % 2 == 0 else list(runners)[::-1]
        for frame in frames:
            got = {}
            for name in order:
                w0, c0 = time.perf_counter(), time.process_time()
                got[name] = runners[name](frame)
                wall[name].append(time.perf_counter() - w0)
                cpu[name].append(time.process_time() - c0)
            diffs.append(abs(got["native"] - got["python"]) / abs(got["python"]))
    prep = {"native": native.preprocess, "python": python.preprocess}
    prep_wall: dict[str, list[float]] = {name: [] for name in prep}
    for r in range(rounds):
        for frame in frames:
            for name in (list(prep) if r % 2 == 0 else list(prep)[::-1]):
                w0 = time.perf_counter()
                prep[name](frame)
                prep_wall[name].append(time.perf_counter() - w0)
    native.close()
    out = {}
    for name in runners:
        out[name] = {"latency_s": summary(wall[name]), "frames_per_s": 1.0 / statistics.fmean(wall[name]),
                     "cpu_s_per_frame": statistics.fmean(cpu[name]),
                     "preprocess_s": summary(prep_wall[name])}
    out["max_rel_score_diff"] = max(diffs)
    out["native_over_python_latency"] = statistics.fmean(wall["native"]) / statistics.fmean(wall["python"])
    return out


def native_start(build: Path, bundle: Path, image: Path, threads: int, cache: str | None) -> dict:
    cmd = [str(build / "score_frames"), "--timing", "--threads", str(threads), "--cache-dir", cache or "", str(bundle),
           str(image)]
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - start
    open_s, first_s, _, peak, rss = map(float, TIMING.search(done.stderr).groups())
    return {"process_wall_s": wall, "open_s": open_s, "first_score_s": first_s - open_s, "peak_rss_mb": peak,
            "rss_after_scoring_mb": rss}


def python_start(bundle: Path, image: Path, threads: int, cache: str | None) -> dict:
    options = json.dumps({"cache_dir": cache})  # None: no cache (the runtime's default cache is on)
    cmd = [sys.executable, str(REPO / "scripts" / "runtime_startup.py"), "--child", str(bundle), "--image", str(image),
           "--threads", str(threads), "--backend-options", options]
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=REPO)
    wall = time.perf_counter() - start
    run = json.loads(done.stdout.strip().splitlines()[-1])
    return {"process_wall_s": wall, "open_s": run["import_plus_load_s"], "first_score_s": run["first_score_s"],
            "peak_rss_mb": run["vm_hwm_mb"], "rss_after_scoring_mb": run["rss_after_scoring_mb"]}


def startup(bundle: Path, build: Path, image: Path, runs: int, threads: int) -> dict:
    out = {}
    with tempfile.TemporaryDirectory(prefix="native-bench-cache-") as tmp:
        caches = {"warm_cache": str(Path(tmp) / "ov"), "no_cache": None}
        native_start(build, bundle, image, threads, caches["warm_cache"])  # fills the cache
        python_start(bundle, image, threads, str(Path(tmp) / "ov-py"))
        for label, cache in caches.items():
            rows: dict[str, list[dict]] = {"native": [], "python": []}
            for r in range(runs):
                order = ["native", "python"] if r % 2 == 0 else ["python", "native"]
                for name in order:
                    if name == "native":
                        rows[name].append(native_start(build, bundle, image, threads, cache))
                    else:
                        rows[name].append(python_start(bundle, image, threads, cache and str(Path(tmp) / "ov-py")))
            out[label] = {name: {key: summary([row[key] for row in values]) for key in values[0]}
                          for name, values in rows.items()}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bundles", nargs="+", type=Path)
    parser.add_argument("--build", type=Path, default=REPO / "build" / "native")
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--startup-runs", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    paths = sorted(IMAGES.iterdir())[: args.images]
    frames = [load_image(path) for path in paths]
    report = {"command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]), "date_utc": time.strftime(
        "%Y-%m-%d %H:%M", time.gmtime()), "cpus": os.cpu_count(), "loadavg_before": os.getloadavg(),
        "frames": f"{len(frames)} calibration photos ({frames[0].shape[1]}x{frames[0].shape[0]} JPEG, decoded once)",
        "threads": args.threads, "bundles": {}}
    for bundle in args.bundles:
        report["bundles"][str(bundle)] = {
            "inference": inference(bundle, args.build, frames, args.rounds, args.threads),
            "startup": startup(bundle, args.build, paths[0], args.startup_runs, args.threads)}
    report["loadavg_after"] = os.getloadavg()
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
