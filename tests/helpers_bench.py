"""Bench test helpers: a report assembled by the real ``finish_rows`` from synthetic raw results,
and a labelled image set built from the shipped reference photos (no ../shared needed)."""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from edge_iqa.bench import sensitivity as sens
from edge_iqa.bench.dataset import EvalSet
from edge_iqa.bench.machine import describe_machine
from edge_iqa.bench.runner import REPORT_SCHEMA, REPORT_SCHEMA_VERSION, finish_rows
from edge_iqa.bench.suite import PYTORCH_EAGER, SensitivitySpec, Suite, load_suite
from edge_iqa.data.distortions import distort
from edge_iqa.data.imageio import load_image

BENCH_DIR = Path(__file__).resolve().parents[1] / "bench"
REFERENCES = BENCH_DIR / "references"


def _speed(rate: float) -> dict[str, Any]:
    latency = 1000.0 / rate
    return {"latency_bs1": {"p50_ms": latency, "p90_ms": latency * 1.1, "p99_ms": latency * 1.3,
                            "p50_ms_repeats": [latency * 0.99, latency, latency * 1.01]},
            "throughput": {"1": {"images_per_s": rate, "images_per_s_repeats": [rate * 0.98, rate, rate * 1.02]},
                           "4": {"images_per_s": rate * 1.2}},
            "concurrency": {"1": {"images_per_s": rate}, "2": {"images_per_s": rate * 1.5}},
            "end_to_end_ms_per_image": latency + 5}


def synthetic_items() -> list[sens.SensitivityItem]:
    return [sens.SensitivityItem(t, ref, level, Path(f"{t}_{ref}_{level}.png"))
            for t in ("jpeg", "gaussian_blur") for ref in ("a", "b") for level in (1, 2, 3, 4, 5)]


def synthetic_report(**kwargs: Any) -> dict[str, Any]:
    """A fresh copy of :func:`_synthetic_report` (cached: the bootstrap CIs take seconds)."""
    return copy.deepcopy(_synthetic_report(**kwargs))


@functools.lru_cache(maxsize=8)
def _synthetic_report(seed: int = 0, n: int = 60, int8_noise: float = 0.02, int8_rate: float = 40.0,
                      int8_blind_to: str | None = None, error_row: bool = True) -> dict[str, Any]:
    """Three measured rows (PyTorch reference, ORT FP32 = reference + tiny noise, ORT INT8 = noisier,
    optionally blind to one distortion type) and an export error row, finished by the real code."""
    rng = np.random.default_rng(seed)
    mos = rng.uniform(0, 100, n)
    reference = mos / 100 + rng.normal(0, 0.15, n)
    items = synthetic_items()
    ref_sens = np.array([-item.level + 0.1 * rng.normal() for item in items])
    int8_sens = ref_sens.copy()
    if int8_blind_to:
        int8_sens[[i for i, item in enumerate(items) if item.type_name == int8_blind_to]] = 1.0
    suite = load_suite().with_overrides(name="synthetic", bootstrap_resamples=200)
    raw = [
        {"id": PYTORCH_EAGER, "kind": "pytorch", "target": "pytorch", "precision": "fp32", "status": "ok",
         "info": {"backend": "pytorch", "size_bytes": 10_000_000, "threads": 2}, "speed": _speed(10.0),
         "load": {"time_to_first_score_s": 3.0}, "memory": {"peak_rss_mb_speed": 500.0},
         "_scores": reference.tolist(), "_sensitivity_scores": ref_sens.tolist()},
        {"id": "onnxruntime/fp32", "kind": "bundle", "target": "onnxruntime", "precision": "fp32", "status": "ok",
         "info": {"backend": "onnxruntime", "size_bytes": 9_800_000, "threads": 2}, "speed": _speed(20.0),
         "load": {"time_to_first_score_s": 0.5}, "memory": {"peak_rss_mb_speed": 120.0},
         "_scores": (reference + rng.normal(0, 1e-6, n)).tolist(), "_sensitivity_scores": ref_sens.tolist()},
        {"id": "onnxruntime/int8", "kind": "bundle", "target": "onnxruntime", "precision": "int8", "status": "ok",
         "info": {"backend": "onnxruntime", "size_bytes": 2_900_000, "threads": 2}, "speed": _speed(int8_rate),
         "load": {"time_to_first_score_s": 0.4}, "memory": {"peak_rss_mb_speed": 90.0},
         "_scores": (reference + rng.normal(0, int8_noise, n)).tolist(), "_sensitivity_scores": int8_sens.tolist()},
    ]
    if error_row:
        raw.append({"id": "cpu/int8", "kind": "bundle", "target": "cpu", "precision": "int8", "status": "error",
                    "stage": "export", "error": "ExportError: synthetic failure"})
    evalset = EvalSet([Path(f"{i}.jpg") for i in range(n)], mos, "labels.csv", n, 0, "clive")
    rows = finish_rows(copy.deepcopy(raw), [evalset], items, suite)
    machine = describe_machine()
    return {"schema": REPORT_SCHEMA, "schema_version": REPORT_SCHEMA_VERSION, "created": "2026-01-01T00:00:00+00:00",
            "suite": suite.to_dict(), "suite_fingerprint": suite.fingerprint(), "machine": machine,
            "dataset": evalset.record(), "datasets": {"clive": evalset.record()},
            "weights": {"checkpoint": "embedded", "random_weights": False},
            "sensitivity": {"skipped": None, "types": ["gaussian_blur", "jpeg"], "references": ["a", "b"],
                            "levels": [1, 2, 3, 4, 5]},
            "rows": rows, "elapsed_s": 1.0, "_mos": mos, "_raw": raw}


def tiny_suite_images(folder: Path, count: int = 2) -> list[Path]:
    """The shipped reference photos (downscaled) plus JPEG and blur levels of them: real pixels,
    a spread of qualities, no external data."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for photo in sorted(REFERENCES.glob("*.webp"))[:count]:
        image = np.asarray(Image.fromarray(load_image(photo)).resize((192, 144)))
        Image.fromarray(image).save(folder / f"{photo.stem}.png")
        paths.append(folder / f"{photo.stem}.png")
        for kind in ("jpeg", "gaussian_blur", "white_noise"):
            for level in (1, 3, 5):
                path = folder / f"{photo.stem}_{kind}_{level}.png"
                Image.fromarray(distort(image, kind, level)).save(path)
                paths.append(path)
    return paths


def write_labels(path: Path, images: list[Path], mos: np.ndarray) -> Path:
    rows = zip(images, mos, strict=True)
    lines = ["image,mos"] + [f"{p.relative_to(path.parent).as_posix()},{m:.6f}" for p, m in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def sensitivity_spec(count: int = 1, types: tuple[str, ...] = ("jpeg",)) -> SensitivitySpec:
    return SensitivitySpec(enabled=True, references=REFERENCES, count=count, types=types)


__all__ = ["REFERENCES", "Suite", "sensitivity_spec", "synthetic_items", "synthetic_report", "tiny_suite_images",
           "write_labels"]
