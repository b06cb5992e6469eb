"""A list scores exactly as its images one by one, with read-ahead (decode + preprocess in worker
threads while the network runs) and with the reused input buffers; read_ahead keeps order, raises
where a loop would, and starts nothing beyond its look-ahead."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from edge_iqa.errors import ImageDecodeError
from edge_iqa.runtime import load
from edge_iqa.runtime.prefetch import read_ahead
from tests.export_helpers import fine_tuning_steps
from tests.helpers_runtime import GRID_SPEC, TinyNet, build_bundle, clive_photos_or_skip

NET = TinyNet.random(seed=11)


@pytest.fixture(scope="module")
def photos() -> list[Path]:
    return clive_photos_or_skip(14)


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("read_ahead")
    return {"onnxruntime": build_bundle(root / "ort", NET, max_batch=4),
            "openvino": build_bundle(root / "ov", NET, runtime="openvino", max_batch=4),
            "grid_ov": build_bundle(root / "grid", NET, runtime="openvino", spec=GRID_SPEC, max_batch=4),
            "fixed4": build_bundle(root / "fixed4", NET, fixed_batch=4)}


def assert_list_is_one_by_one(bundle: Path, photos: list[Path]) -> None:
    """Exact equality: every prefetch setting, the list at once and each image alone."""
    alone = load(bundle, threads=2, prefetch=0)
    one_by_one = np.array([alone.score_one(path) for path in photos])
    for prefetch in (0, 1, 3):
        scorer = load(bundle, threads=2, prefetch=prefetch)
        np.testing.assert_array_equal(scorer.score(photos), one_by_one)
        np.testing.assert_array_equal(scorer.score(iter(photos)), one_by_one)  # a generator: length unknown
    assert np.ptp(one_by_one) > 0.1  # real, different scores


@pytest.mark.parametrize("bundle", ["onnxruntime", "openvino", "grid_ov"])
def test_list_scores_are_exactly_the_one_by_one_scores(bundles, photos, bundle):
    assert_list_is_one_by_one(bundles[bundle], photos)


def test_default_prefetch_is_threads_minus_one(bundles):
    assert load(bundles["onnxruntime"], threads=1).prefetch == 0
    assert load(bundles["onnxruntime"], threads=3).prefetch == 2
    assert load(bundles["onnxruntime"], threads=3, prefetch=0).info["prefetch"] == 0
    with pytest.raises(ValueError, match="prefetch must be an integer"):
        load(bundles["onnxruntime"], prefetch=-1)


def test_a_bad_image_raises_where_the_sequential_loop_would(bundles, photos, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    scorer = load(bundles["openvino"], threads=2, prefetch=2)
    with pytest.raises(ImageDecodeError, match="broken.jpg"):
        scorer.score(photos[:5] + [broken] + photos[5:])
    # The scorer is intact afterwards: buffers back in the pool, no read-ahead left running.
    np.testing.assert_array_equal(scorer.score(photos[:3]), [scorer.score_one(p) for p in photos[:3]])


def idle_buffer_ids(scorer) -> set[int]:
    sets = []
    while not scorer._idle_buffers.empty():
        sets.append(scorer._idle_buffers.get_nowait())
    for buffers in sets:
        scorer._idle_buffers.put(buffers)
    return {id(array) for buffers in sets for array in buffers}


@pytest.mark.parametrize("list_streams", [1, 2])
def test_input_buffers_are_reused_between_calls(bundles, photos, list_streams):
    scorer = load(bundles["openvino"], threads=2, backend_options={"list_streams": list_streams})
    scorer.score(photos[:6])
    first = idle_buffer_ids(scorer)
    assert 1 <= len(first) <= list_streams  # one set per concurrent network call
    for _ in range(3):
        scorer.score(photos[6:12])
        scorer.score_one(photos[0])
    assert idle_buffer_ids(scorer) == first  # the same arrays again, none allocated since


def test_static_batch_padding_is_zero_after_a_fuller_call(bundles, photos, monkeypatch):
    """The buffers are not zeroed between calls: the padding rows of a static batch must still be."""
    scorer = load(bundles["fixed4"], threads=1)
    scorer.score(photos[:4])  # fills all four rows
    fed: list[np.ndarray] = []
    real_run = scorer.backend.run
    monkeypatch.setattr(scorer.backend, "run", lambda batch: (fed.append(batch.copy()), real_run(batch))[1])
    alone = scorer.score_one(photos[5])
    assert fed[0].shape[0] == 4 and not fed[0][1:].any()
    assert alone == load(bundles["fixed4"], threads=1).score_one(photos[5])


def test_concurrent_calls_each_get_their_own_buffers(bundles, photos):
    scorer = load(bundles["onnxruntime"], threads=2, prefetch=1)
    expected = scorer.score(photos)
    results: dict[int, np.ndarray] = {}

    def work(k: int) -> None:
        order = photos[k:] + photos[:k]
        results[k] = np.roll(scorer.score(order), k)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for k in range(4):
        np.testing.assert_array_equal(results[k], expected)


def test_read_ahead_keeps_order_and_bounds_the_work_started():
    started: list[int] = []
    lock = threading.Lock()

    def work(item: int) -> int:
        with lock:
            started.append(item)
        return item * item

    results = read_ahead(work, range(100), workers=3, lookahead=5)
    for consumed, value in enumerate(results, start=1):
        assert value == (consumed - 1) ** 2
        with lock:
            assert len(started) <= consumed + 5  # never more than the look-ahead beyond the caller
    assert sorted(started) == list(range(100))
    assert list(read_ahead(work, [], workers=2, lookahead=4)) == []
    assert list(read_ahead(work, [3], workers=2, lookahead=4)) == [9]
    assert list(read_ahead(work, range(4), workers=0, lookahead=4)) == [0, 1, 4, 9]


def test_read_ahead_raises_at_the_failing_item_and_stops():
    def work(item: int) -> int:
        if item == 4:
            raise KeyError(item)
        return item

    results = read_ahead(work, range(1000), workers=2, lookahead=3)
    assert [next(results) for _ in range(4)] == [0, 1, 2, 3]
    with pytest.raises(KeyError):
        next(results)


@pytest.mark.slow
@pytest.mark.parametrize("parent", ["cpu", "onnxruntime"])
def test_default_model_int8_list_scores_are_exactly_one_by_one(tmp_path, photos, parent):
    """The shipped model, quantized to INT8 for OpenVINO and ONNX Runtime (fewer calibration images
    than the real targets: the bundles are real, only cheaper to make)."""
    pytest.importorskip("nncf")
    from edge_iqa.export import pipeline
    from edge_iqa.export.targets import load_target

    profile = tmp_path / "tiny.toml"
    steps = fine_tuning_steps(parent, 10)
    profile.write_text(f'inherits = "{parent}"\nname = "tiny-{parent}"\n[quantization]\ncalibration_samples = 8\n'
                       f"{steps}[parity]\nimages = 4\naccuracy_images = 8\n")
    bundle = pipeline.export_bundle("edge_hybrid_n", load_target(profile), "int8", out=tmp_path / "int8",
                                    accuracy_gate=False, quiet=True)
    assert load(bundle).max_batch > 1  # the list really travels in batches of several images
    assert_list_is_one_by_one(bundle, photos)


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_a_list_runs_its_images_side_by_side_on_the_list_setup(bundles, photos, runtime, monkeypatch):
    scorer = load(bundles[runtime], threads=2)
    assert load(bundles[runtime], threads=2, backend_options={"list_streams": 1}).backend.throughput() is None
    streams = scorer.backend.throughput()
    assert streams is not None and streams is not scorer.backend and streams.parallel_calls == 2
    assert scorer.backend.throughput() is streams  # made once
    running, most, lock = [0], [0], threading.Lock()
    real_run = streams.run

    def run(*inputs: np.ndarray) -> np.ndarray:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        try:
            threading.Event().wait(0.05)  # long enough for the other stream's call to start
            return real_run(*inputs)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(streams, "run", run)
    latency_calls: list[tuple[np.ndarray, ...]] = []
    monkeypatch.setattr(scorer.backend, "run", lambda *inputs: latency_calls.append(inputs))
    scores = scorer.score(photos[:6])
    assert most[0] == 2 and latency_calls == []  # two images at once, nothing on the latency set-up
    np.testing.assert_array_equal(scores, load(bundles[runtime], threads=1).score(photos[:6]))
