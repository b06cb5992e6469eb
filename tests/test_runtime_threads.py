"""One Scorer shared by several threads returns exactly what a single thread returns."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from edge_iqa.runtime import load
from tests.helpers_runtime import GRID_SPEC, TinyNet, any_photos, build_bundle

NET = TinyNet.random(seed=2)
THREADS = 4


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("threads")
    return {"onnxruntime": build_bundle(root / "ort", NET, max_batch=3),
            "openvino": build_bundle(root / "ov", NET, runtime="openvino", max_batch=3),
            "grid": build_bundle(root / "grid", NET, spec=GRID_SPEC, max_batch=4)}


@pytest.mark.parametrize("threads", [1, None])
@pytest.mark.parametrize("name", ["onnxruntime", "openvino", "grid"])
def test_threads_get_exactly_the_single_thread_scores(bundles, name, threads):
    photos = any_photos(8)
    images = [np.asarray(s) for s in _decoded(photos)]  # decode once; threads then mostly run inference
    scorer = load(bundles[name], threads=threads)
    created = _count_infer_requests(scorer.backend) if name == "openvino" else None
    single_list = scorer.score(images)
    single_each = [scorer.score_one(img) for img in images]

    start = threading.Barrier(THREADS)

    def worker(index: int) -> tuple[np.ndarray, list[float]]:
        start.wait()  # all threads hit the shared backend at the same moment
        rotated = images[index:] + images[:index]
        each = [scorer.score_one(img) for img in rotated]
        return scorer.score(images), each[-index:] + each[:-index] if index else each

    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(worker, range(THREADS)))
    for as_list, each in results:
        np.testing.assert_array_equal(as_list, single_list)
        assert each == single_each
    if created is not None:
        # Requests are reused, not leaked per call: at most one per concurrent caller was ever made,
        # and every one is back in the idle pool once the calls have returned.
        assert 1 <= created[0] <= THREADS
        assert scorer.backend._idle.qsize() == created[0]


def _count_infer_requests(backend) -> list[int]:
    """Count the OpenVINO infer requests the backend creates (a counter the test can read)."""
    compiled, created = backend.compiled, [0]

    class Counting:
        def create_infer_request(self):
            created[0] += 1
            return compiled.create_infer_request()

    backend.compiled = Counting()
    return created


def _decoded(paths: list[Path]) -> list[np.ndarray]:
    from edge_iqa.data.imageio import load_image

    return [load_image(p) for p in paths]
