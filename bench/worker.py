"""One benchmark row in its own process: ``python -m edge_iqa.bench.worker JOB.json RESULT.json``.

A fresh process per row makes the peak resident memory (``ru_maxrss``) belong to that bundle
alone, and keeps a bundle row free of torch (a bundle row never imports it). The job names either
a bundle folder or a registered model (its checkpoint on the torch backend, eager or
``torch.compile``), both scored through :func:`edge_iqa.runtime.load`: one scoring path. The result holds raw scores
and timings; the parent computes the metrics.
"""

from __future__ import annotations

import json
import resource
import statistics
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

CHUNK_IMAGES = 16  # images per score() call when scoring the evaluation set (bounded memory)


def peak_rss_mb() -> float:
    """Peak resident memory of this process (MB).

    ``VmHWM`` from ``/proc/self/status`` where it exists: ``getrusage(RUSAGE_SELF).ru_maxrss``
    is inherited across fork + exec on Linux (the kernel folds the parent's high-water mark into
    the child's at exec), so in a worker started by a parent holding torch it would report the
    parent's peak, not this bundle's. Elsewhere ``ru_maxrss`` (KiB on Linux, bytes on macOS).
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    scale = 1.0 / 1024 if sys.platform != "darwin" else 1.0 / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


class _Row:
    """One row's Scorer (a bundle, or a model's checkpoint on the torch backend)."""

    def __init__(self, job: dict[str, Any]) -> None:
        from edge_iqa.runtime import load

        if job["kind"] == "bundle":
            self.scorer = load(job["bundle"], threads=job["threads"] or None)
        else:
            checkpoint, options = job.get("checkpoint"), {"batch_images": max(job["speed"]["batch_sizes"])}
            self.scorer = load(checkpoint or job["model"], model=job["model"] if checkpoint else None,
                               threads=job["threads"] or None, backend_options=options)
            if job.get("compile"):
                import torch

                self.scorer.backend.module = torch.compile(self.scorer.backend.module)
        self.spec = self.scorer.spec
        self.preprocess = self.scorer.preprocess
        self.score_tensor = self.scorer.score_tensor

    def score(self, paths: Sequence[str]) -> np.ndarray:
        return self.scorer.score(list(paths))

    def describe(self) -> dict[str, Any]:
        manifest = self.scorer.manifest
        if manifest.runtime == "torch":
            import torch

            module = self.scorer.backend.module
            params = sum(t.numel() * t.element_size() for t in module.state_dict().values())
            return {"backend": "pytorch", "torch": torch.__version__, "threads": torch.get_num_threads(),
                    "compile": isinstance(module, torch._dynamo.eval_frame.OptimizedModule), "size_bytes": int(params)}
        info = {k: v for k, v in self.scorer.info.items() if isinstance(v, (str, int, float, list, type(None)))}
        info["size_bytes"] = int(sum(rec.get("size", 0) for rec in manifest.files.values()))
        info["model_file_bytes"] = int(manifest.files[manifest.model_file].get("size", 0))
        info["runtime_options"] = manifest.get("runtime_options")
        return info


def _score_all(row: Any, paths: Sequence[str]) -> list[float]:
    out: list[float] = []
    for start in range(0, len(paths), CHUNK_IMAGES):
        out.extend(float(s) for s in row.score(paths[start : start + CHUNK_IMAGES]))
    return out


def _end_to_end_ms(score: Callable[[Sequence[str]], np.ndarray], paths: Sequence[str]) -> float:
    """Median wall time of score([path]) (decode + preprocess + inference), one image at a time."""
    times = []
    for path in paths:
        start = time.perf_counter()
        score([path])
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000.0


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    from edge_iqa.bench import speed as bench_speed

    settings = job["speed"]
    result: dict[str, Any] = {"status": "ok"}
    start = time.perf_counter()
    row = _Row(job)
    loaded = time.perf_counter()
    row.score(job["probe_images"][:1])
    first = time.perf_counter()
    result["load"] = {"load_s": loaded - start, "time_to_first_score_s": first - start,
                      "rss_after_first_score_mb": peak_rss_mb()}
    result["info"] = row.describe()

    stacks = [row.preprocess(p) for p in job["probe_images"]]
    speed: dict[str, Any] = {"threads_setting": job["threads"]}
    speed["latency_bs1"] = bench_speed.measure_latency(row.score_tensor, stacks, warmup=settings["warmup"],
                                                       iterations=settings["iterations"], repeats=settings["repeats"])
    speed["throughput"] = bench_speed.measure_throughput(row.score_tensor, stacks,
                                                         batch_sizes=settings["batch_sizes"],
                                                         images=settings["sweep_images"], repeats=settings["repeats"])
    speed["concurrency"] = bench_speed.measure_concurrency(row.score_tensor, stacks, threads=settings["concurrency"],
                                                           images_per_thread=settings["concurrent_images"])
    speed["end_to_end_ms_per_image"] = _end_to_end_ms(row.score, job["probe_images"][:8])
    result["speed"] = speed
    result["memory"] = {"peak_rss_mb_speed": peak_rss_mb()}

    result["scores"] = _score_all(row, job["images"])
    result["sensitivity_scores"] = _score_all(row, job["sensitivity_images"])
    result["memory"]["peak_rss_mb_total"] = peak_rss_mb()
    return result


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m edge_iqa.bench.worker JOB.json RESULT.json", file=sys.stderr)
        return 2
    job = json.loads(Path(args[0]).read_text())
    try:
        result = run_job(job)
        code = 0
    except Exception as exc:  # noqa: BLE001 - any failure becomes an error row, never a crash
        result = {"status": "error", "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
        code = 1
    Path(args[1]).write_text(json.dumps(result))
    return code


if __name__ == "__main__":
    sys.exit(main())
