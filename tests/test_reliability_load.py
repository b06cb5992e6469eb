"""Load: many threads get exactly the single-thread results (bad inputs included), concurrent
loads of one bundle work, and a few thousand scores keep resident memory flat.

The long soak (tens of thousands of scores on the default model's bundle) is
``python scripts/soak.py BUNDLE``; docs/reliability.md has its figures. ``EDGE_IQA_SOAK_SCORES``
sets the short soak's length here (default 2500).
"""

from __future__ import annotations

import importlib.util
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge_iqa.errors import EdgeIQAError
from edge_iqa.runtime import Scorer, load
from tests.helpers_runtime import GRID_SPEC, TinyNet, any_photos, build_bundle

REPO = Path(__file__).resolve().parents[1]
NET = TinyNet.random(seed=41)
THREADS = 8
ROUNDS = 6
SOAK_SCORES = int(os.environ.get("EDGE_IQA_SOAK_SCORES", "2500"))
#: Growth of RSS over the short soak after its warm-up. A leak of one preprocessed 96x96 input
#: (110 KiB) per score would add ~270 MiB over 2500 scores; allocator noise is a few MiB.
SOAK_GROWTH_LIMIT_MIB = 16.0


def _soak_module() -> Any:
    spec = importlib.util.spec_from_file_location("edge_iqa_soak", REPO / "scripts" / "soak.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


soak_script = _soak_module()


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("load")
    return {"onnxruntime": build_bundle(root / "ort", NET, max_batch=3),
            "openvino": build_bundle(root / "ov", NET, runtime="openvino", max_batch=3),
            "grid": build_bundle(root / "grid", NET, spec=GRID_SPEC, max_batch=4)}


@pytest.fixture(scope="module")
def small_photos(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Real photos downscaled to 160 px (JPEG and PNG files): load tests time the runtime, not libjpeg."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("photos")
    paths = []
    for index, source in enumerate(any_photos(24)):
        with Image.open(source) as img:
            small = img.convert("RGB")
            small.thumbnail((160, 160))
        paths.append(folder / f"{index}.{'png' if index % 4 == 3 else 'jpg'}")
        small.save(paths[-1])
    return paths


@pytest.fixture(scope="module")
def inputs(small_photos: list[Path]) -> list[Any]:
    valid, broken = soak_script.make_inputs(small_photos[:6], decode_arrays=2)
    mixed: list[Any] = []
    for index, item in enumerate(valid):
        mixed += [item, broken[index % len(broken)]]
    return mixed


def outcomes(scorer: Scorer, items: list[Any]) -> list[float | str]:
    result: list[float | str] = []
    for item in items:
        try:
            result.append(scorer.score_one(item))
        except EdgeIQAError as exc:
            result.append(type(exc).__name__)
    return result


@pytest.mark.parametrize("name", ["onnxruntime", "openvino", "grid"])
def test_threads_repeat_the_single_thread_results(bundles: dict[str, Path], inputs: list[Any], name: str) -> None:
    scorer = load(bundles[name], threads=1)
    single = outcomes(scorer, inputs)
    valid = [item for item, out in zip(inputs, single, strict=True) if isinstance(out, float)]
    single_list = scorer.score(valid)
    assert sum(isinstance(o, str) for o in single) >= 4 and len(valid) >= 4
    barrier = threading.Barrier(THREADS)

    def worker(index: int) -> list[tuple[list[float | str], np.ndarray]]:
        barrier.wait()
        rounds = []
        for round_ in range(ROUNDS):
            shift = (index + round_) % len(inputs)  # threads hit different inputs at the same moment
            rotated = inputs[shift:] + inputs[:shift]
            got = outcomes(scorer, rotated)
            rounds.append((got[-shift:] + got[:-shift] if shift else got, scorer.score(valid)))
        return rounds

    with ThreadPoolExecutor(THREADS) as pool:
        results = [r for rounds in pool.map(worker, range(THREADS)) for r in rounds]
    assert len(results) == THREADS * ROUNDS
    for each, as_list in results:
        assert each == single
        np.testing.assert_array_equal(as_list, single_list)


def test_concurrent_loads_of_one_bundle(bundles: dict[str, Path], inputs: list[Any]) -> None:
    reference = outcomes(load(bundles["onnxruntime"], threads=1), inputs)

    def load_and_score(_: int) -> list[float | str]:
        return outcomes(load(bundles["onnxruntime"], threads=1), inputs)

    with ThreadPoolExecutor(4) as pool:
        assert all(r == reference for r in pool.map(load_and_score, range(8)))


def test_short_soak_keeps_memory_flat(bundles: dict[str, Path], small_photos: list[Path]) -> None:
    scorer = load(bundles["onnxruntime"], threads=1)
    valid, broken = soak_script.make_inputs(small_photos, decode_arrays=4)
    summary = soak_script.soak(scorer, valid, broken, SOAK_SCORES, workers=2, bad_every=10, warmup=300,
                               sample_every=250)
    print("\nshort soak:", {k: v for k, v in summary.items() if k != "samples"})
    assert summary["other_errors"] == 0 and summary["bad_accepted"] == 0 and summary["non_finite"] == 0
    assert summary["scores"] + summary["typed_errors"] == SOAK_SCORES
    assert summary["typed_errors"] == SOAK_SCORES // 10
    assert summary["canary_unchanged"]
    assert summary["growth_mib"] < SOAK_GROWTH_LIMIT_MIB, summary["samples"]
