"""Latency and throughput of a ``score_tensor``-like callable (torch-free, in-process clock).

Protocol (the same for every row, PyTorch included):

- warm-up calls first, never timed (lazy allocations, kernel selection, OpenVINO's first infer);
- latency: ``repeats`` x ``iterations`` batch-1 calls timed one by one with ``time.perf_counter``;
  p50 is the median over repeats of each repeat's median (robust to one noisy repeat), p90/p99 are
  taken over all calls pooled;
- throughput: for each batch size, ``sweep_images`` images per repeat, images/s = images / wall
  time, median over repeats;
- concurrency: N Python threads each scoring ``concurrent_images`` batch-1 inputs at once on the
  same scorer; total images / wall time.

The callables receive each row's own preprocessed input (``Scorer.preprocess``): the crops' uint8
pixels for a pixel bundle, whose network normalises them inside the clock, ``(n * num_crops, 3, H, W)``
float32 rows normalised beforehand for every other row, PyTorch included. Decoding and resizing are
outside the timed region (reported separately as end-to-end time per image).
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

ScoreFn = Callable[[np.ndarray], np.ndarray]


def percentile_ms(samples_s: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(samples_s) * 1000.0, q))


def batch_of(stacks: Sequence[np.ndarray], n: int) -> np.ndarray:
    """``n`` images' crop stacks concatenated (cycling through ``stacks``)."""
    return np.ascontiguousarray(np.concatenate([stacks[i % len(stacks)] for i in range(n)]))


def measure_latency(fn: ScoreFn, stacks: Sequence[np.ndarray], *, warmup: int, iterations: int,
                    repeats: int) -> dict[str, Any]:
    for i in range(warmup):
        fn(batch_of(stacks[i % len(stacks):], 1))
    inputs = [batch_of(stacks[i % len(stacks):], 1) for i in range(iterations)]
    per_repeat: list[list[float]] = []
    for _ in range(repeats):
        times = []
        for x in inputs:
            start = time.perf_counter()
            fn(x)
            times.append(time.perf_counter() - start)
        per_repeat.append(times)
    pooled = [t for times in per_repeat for t in times]
    p50_repeats = [percentile_ms(times, 50) for times in per_repeat]
    return {
        "p50_ms": statistics.median(p50_repeats),
        "p90_ms": percentile_ms(pooled, 90),
        "p99_ms": percentile_ms(pooled, 99),
        "mean_ms": float(np.mean(pooled) * 1000.0),
        "p50_ms_repeats": p50_repeats,
        "calls": len(pooled),
        "warmup": warmup,
    }


def measure_throughput(fn: ScoreFn, stacks: Sequence[np.ndarray], *, batch_sizes: Sequence[int], images: int,
                       repeats: int) -> dict[str, Any]:
    """images/s per batch size (median over repeats; each batch size warmed once first)."""
    result: dict[str, Any] = {}
    for size in batch_sizes:
        batch = batch_of(stacks, size)
        calls = max(1, images // size)
        fn(batch)  # a new batch shape may allocate or re-plan
        rates = []
        for _ in range(repeats):
            start = time.perf_counter()
            for _ in range(calls):
                fn(batch)
            rates.append(calls * size / (time.perf_counter() - start))
        result[str(size)] = {"images_per_s": statistics.median(rates), "images_per_s_repeats": rates,
                             "calls": calls}
    return result


def measure_concurrency(fn: ScoreFn, stacks: Sequence[np.ndarray], *, threads: Sequence[int],
                        images_per_thread: int) -> dict[str, Any]:
    """Total images/s with N threads calling ``fn`` (batch 1) at the same time."""
    inputs = [batch_of(stacks[i % len(stacks):], 1) for i in range(images_per_thread)]
    result: dict[str, Any] = {}
    for count in threads:
        errors: list[BaseException] = []
        barrier = threading.Barrier(count + 1)

        def work(barrier: threading.Barrier = barrier, errors: list[BaseException] = errors) -> None:
            try:
                barrier.wait()
                for x in inputs:
                    fn(x)
            except BaseException as exc:  # noqa: BLE001 - reported, the other threads keep going
                errors.append(exc)

        workers = [threading.Thread(target=work) for _ in range(count)]
        for worker in workers:
            worker.start()
        barrier.wait()
        start = time.perf_counter()
        for worker in workers:
            worker.join()
        elapsed = time.perf_counter() - start
        if errors:
            result[str(count)] = {"error": f"{type(errors[0]).__name__}: {errors[0]}"}
        else:
            result[str(count)] = {"images_per_s": count * len(inputs) / elapsed}
    return result
