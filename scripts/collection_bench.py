"""Benchmark of collection scoring: images/s of a bundle on this machine with the local engine and
with Ray Data at 1 and 2 workers, at the same total threads; Ray's overhead against local at
equal cores; CPU seconds per image over every process; driver and worker RSS.

Rows run in one process, in rounds, their order rotated each round (the machine may be shared:
compare rows of one run, never across runs); the load average is recorded. A local Ray instance
(num_cpus = the machine's cores) is started once and kept for all rows, as a running cluster would
be; each Ray row still pays for its actors' start and bundle load, which the job's wall time
includes and the steady rate (first to last batch) does not.

    python scripts/collection_bench.py --bundle bundles/cpu --images ../shared/datasets/clive/images \
        --count 600 --rounds 3 --out bench/reports/collection
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil

from edge_iqa.collection import CollectionJob, EngineOptions, run_job


@dataclass(frozen=True)
class Row:
    name: str
    engine: str
    workers: int
    threads_per_worker: int


ROWS = (Row("local 2x1", "local", 2, 1), Row("local 1x2", "local", 1, 2),
        Row("ray 1 worker x 2 threads", "ray", 1, 2), Row("ray 2 workers x 1 thread", "ray", 2, 1))


@dataclass
class Sampler:
    """Progress observer: timing of batches, RSS of the driver and of the scoring processes, CPU
    time of every process of the job (the driver and all its descendants: Ray's too)."""

    me: psutil.Process = field(default_factory=psutil.Process)
    first: float | None = None
    last: float = 0.0
    after_first: int = 0
    driver_rss: float = 0.0
    worker_rss: float = 0.0
    cpu: dict[int, float] = field(default_factory=dict)
    batches: int = 0

    def start(self, total: int) -> None:
        self.cpu_start = self._cpu_now()

    def advance(self, rows: int, failed: int) -> None:
        now = time.perf_counter()
        if self.first is None:
            self.first = now
            self.cpu_first = self._cpu_now()  # every process of the job exists by now (Ray's actors too)
        else:
            self.after_first += rows
        self.last = now
        self.batches += 1
        if self.batches % 4 == 1:
            self._sample()

    def stop(self) -> None:
        self._sample()

    def _cpu_now(self) -> dict[int, float]:
        out = {}
        for process in [self.me, *self.me.children(recursive=True)]:
            try:
                times = process.cpu_times()
                out[process.pid] = times.user + times.system
            except psutil.Error:
                pass
        return out

    def _sample(self) -> None:
        self.driver_rss = max(self.driver_rss, self.me.memory_info().rss / 2**20)
        for process in self.me.children(recursive=True):
            try:
                if "ScoreActor" in " ".join(process.cmdline()):
                    self.worker_rss = max(self.worker_rss, process.memory_info().rss / 2**20)
            except psutil.Error:
                pass
        for pid, seconds in self._cpu_now().items():
            self.cpu[pid] = max(self.cpu.get(pid, 0.0), seconds)

    def cpu_seconds(self, since_first_batch: bool = False) -> float:
        base = self.cpu_first if since_first_batch else self.cpu_start
        return sum(seconds - base.get(pid, 0.0) for pid, seconds in self.cpu.items())


def run_row(row: Row, bundle: Path, listing: Path, work: Path, batch_size: int) -> dict:
    sampler = Sampler()
    out = work / f"{row.engine}-{row.workers}x{row.threads_per_worker}-{time.monotonic_ns()}.parquet"
    job = CollectionJob((str(listing),), out, bundle, EngineOptions(row.engine, row.workers, row.threads_per_worker),
                        batch_size=batch_size)
    result = run_job(job, sampler)
    steady = sampler.after_first / (sampler.last - sampler.first) if sampler.first and sampler.last > sampler.first \
        else 0.0
    return {"images": result.new_rows, "failed": result.new_failed, "wall_s": result.seconds,
            "images_per_s": result.images_per_second, "steady_images_per_s": steady,
            "cpu_s_per_image": sampler.cpu_seconds() / max(result.new_rows, 1),
            "steady_cpu_s_per_image": sampler.cpu_seconds(since_first_batch=True) / max(sampler.after_first, 1),
            "driver_rss_mib": sampler.driver_rss,
            "worker_rss_mib": sampler.worker_rss if row.engine == "ray" else sampler.driver_rss}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--images", type=Path, required=True, help="a folder of photos")
    parser.add_argument("--count", type=int, default=600)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--out", type=Path, required=True, help="folder for report.json and report.md")
    args = parser.parse_args()

    import ray

    photos = sorted(p for p in args.images.iterdir() if p.is_file())[: args.count]
    work = Path(tempfile.mkdtemp(prefix="edge-iqa-collection-bench-"))
    listing = work / "list.txt"
    listing.write_text("".join(f"{p.resolve()}\n" for p in photos))
    cores = os.cpu_count() or 1
    ray.init(address="local", num_cpus=cores, include_dashboard=False, logging_level="WARNING")
    loads = [os.getloadavg()]
    results: dict[str, list[dict]] = {row.name: [] for row in ROWS}
    run_row(ROWS[0], args.bundle, listing, work, args.batch_size)  # warm the page cache and the bundle
    for round_index in range(args.rounds):
        order = ROWS[round_index % len(ROWS):] + ROWS[: round_index % len(ROWS)]
        for row in order:
            measured = run_row(row, args.bundle, listing, work, args.batch_size)
            results[row.name].append(measured)
            print(f"round {round_index + 1} {row.name}: {measured['images_per_s']:.1f} images/s "
                  f"(steady {measured['steady_images_per_s']:.1f}), load {os.getloadavg()[0]:.2f}", flush=True)
        loads.append(os.getloadavg())
    ray.shutdown()

    summary = {name: {key: statistics.median(r[key] for r in runs) for key in runs[0]}
               for name, runs in results.items()}
    local = max(summary[r.name]["steady_images_per_s"] for r in ROWS if r.engine == "local")
    for row in ROWS:
        summary[row.name]["vs_best_local"] = summary[row.name]["steady_images_per_s"] / local
    report = {"command": "python scripts/collection_bench.py " + " ".join(
                  f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()),
              "bundle": str(args.bundle), "images": len(photos), "rounds": args.rounds, "cores": cores,
              "cpu": _cpu_model(), "loadavg": loads,
              "rows": [asdict(r) for r in ROWS], "median": summary, "runs": results}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "report.json").write_text(json.dumps(report, indent=2))
    lines = [f"# Collection scoring: {len(photos)} photos, {args.rounds} rounds (median), {cores} cores", "",
             f"Command: `{report['command']}`", "",
             "Load average (1/5/15 min) at start and after each round: "
             + "; ".join("/".join(f"{v:.2f}" for v in load) for load in loads), "",
             "| row | images/s (job) | images/s (steady) | vs best local (steady) | CPU/image, job | CPU/image, "
             "steady | driver RSS MiB | worker RSS MiB |", "|---|---|---|---|---|---|---|---|"]
    for row in ROWS:
        s = summary[row.name]
        lines.append(f"| {row.name} | {s['images_per_s']:.1f} | {s['steady_images_per_s']:.1f} | "
                     f"{s['vs_best_local']:.2f} | {s['cpu_s_per_image'] * 1000:.1f} ms | "
                     f"{s['steady_cpu_s_per_image'] * 1000:.1f} ms | {s['driver_rss_mib']:.0f} | "
                     f"{s['worker_rss_mib']:.0f} |")
    (args.out / "report.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
