"""Distortion sensitivity: does a bundle still rank the five levels of each distortion type like
PyTorch FP32 does?

For each type (:mod:`edge_iqa.data.distortions`) each reference photo is distorted at levels 1..5;
per photo, Kendall tau between level and score (a good model scores stronger distortions lower,
so tau is near -1), averaged over the photos. A bundle is *flagged* on a type when its tau moves
toward 0 (or past it) by more than the budget compared with the FP32 tau: quantization has made it
blind to that distortion.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from scipy import stats

from edge_iqa.bench.suite import SensitivitySpec
from edge_iqa.data.distortions import LEVELS, distort, list_distortions
from edge_iqa.data.imageio import load_image

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}


@dataclass(frozen=True)
class SensitivityItem:
    type_name: str
    reference: str
    level: int
    path: Path


def reference_photos(spec: SensitivitySpec) -> list[Path]:
    folder = spec.references
    if folder is None or not folder.is_dir():
        return []
    photos = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    return photos[: spec.count]


def skip_reason(spec: SensitivitySpec) -> str | None:
    if not spec.enabled:
        return "disabled in the suite ([sensitivity] enabled = false)"
    if not reference_photos(spec):
        return (f"no reference photos in {spec.references}; set [sensitivity] references to a folder of pristine "
                "photos (the shipped suite uses bench/references)")
    return None


def prepare_images(spec: SensitivitySpec, cache_dir: Path) -> list[SensitivityItem]:
    """Write every (type, photo, level) image as lossless PNG under ``cache_dir`` (reused when present)."""
    types = list(spec.types) or list_distortions()
    items: list[SensitivityItem] = []
    for photo in reference_photos(spec):
        image = load_image(photo)
        for type_name in types:
            folder = cache_dir / f"seed{spec.seed}" / type_name
            folder.mkdir(parents=True, exist_ok=True)
            for level in LEVELS:
                path = folder / f"{photo.stem}_L{level}.png"
                if not path.is_file():
                    tmp = path.with_suffix(".tmp.png")
                    Image.fromarray(distort(image, type_name, level, seed=spec.seed)).save(tmp, compress_level=1)
                    tmp.replace(path)
                items.append(SensitivityItem(type_name, photo.stem, level, path))
    return items


def tau_by_type(items: Sequence[SensitivityItem], scores: Sequence[float]) -> dict[str, float]:
    """Mean over reference photos of Kendall tau(level, score), per distortion type (NaN -> 0: a
    model that gives every level the same score has no sensitivity to that type)."""
    if len(items) != len(scores):
        raise ValueError(f"{len(items)} sensitivity images but {len(scores)} scores")
    groups: dict[str, dict[str, list[tuple[int, float]]]] = {}
    for item, score in zip(items, scores, strict=True):
        groups.setdefault(item.type_name, {}).setdefault(item.reference, []).append((item.level, float(score)))
    taus: dict[str, float] = {}
    for type_name, per_photo in groups.items():
        values = []
        for pairs in per_photo.values():
            levels, level_scores = zip(*sorted(pairs), strict=True)
            tau = stats.kendalltau(levels, level_scores).statistic
            values.append(0.0 if tau is None or math.isnan(tau) else float(tau))
        taus[type_name] = float(np.mean(values))
    return taus


def toward_zero(reference_tau: float, tau: float) -> float:
    """How far ``tau`` moved toward 0 from ``reference_tau`` (past 0 counts in full; negative:
    the row is *more* sensitive than the reference)."""
    if reference_tau == 0:
        return 0.0
    sign = 1.0 if reference_tau > 0 else -1.0
    return sign * (reference_tau - tau)


def compare(reference: dict[str, float], row: dict[str, float], budget: float) -> dict[str, Any]:
    """Per-type tau, difference from the reference and the flag; ``flagged`` lists the types."""
    per_type = {}
    for type_name, ref_tau in reference.items():
        if type_name not in row:
            continue
        moved = toward_zero(ref_tau, row[type_name])
        per_type[type_name] = {"tau": row[type_name], "reference_tau": ref_tau, "delta_tau": row[type_name] - ref_tau,
                               "toward_zero": moved, "flagged": moved > budget}
    flagged = [name for name, rec in per_type.items() if rec["flagged"]]
    worst = max((rec["toward_zero"] for rec in per_type.values()), default=0.0)
    return {"per_type": per_type, "flagged": flagged, "max_toward_zero": worst, "budget": budget}
