"""Our own control flow around TensorRT calls, with small test doubles standing in for the library
(these tests check what *our* code does with TensorRT's answers; whether the names exist is
tests/test_tensorrt_api.py's job, and nothing here builds or runs an engine)."""

from __future__ import annotations

import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from edge_iqa.errors import BundleError, ExportError
from edge_iqa.runtime.tensorrt import backend, builder, cuda_memory
from edge_iqa.runtime.tensorrt.recipe import BuildRecipe


class TimingConfig:
    def __init__(self, accepts: set[bytes]) -> None:
        self.accepts, self.attached = accepts, []

    def create_timing_cache(self, data: bytes) -> bytes:
        return data

    def set_timing_cache(self, cache: bytes, ignore_mismatch: bool) -> bool:
        self.attached.append(cache)
        return cache in self.accepts


def test_a_rejected_timing_cache_is_dropped_and_an_unusable_config_fails() -> None:
    config = TimingConfig(accepts={b""})
    builder._attach_timing_cache(config, b"cache from another build")
    assert config.attached == [b"cache from another build", b""]
    with pytest.raises(ExportError, match="timing cache"):
        builder._attach_timing_cache(TimingConfig(accepts=set()), b"")


class Context:
    def __init__(self, accepts_shape: bool) -> None:
        self.accepts_shape = accepts_shape

    def set_input_shape(self, name: str, shape: tuple) -> bool:
        return self.accepts_shape

    def set_tensor_address(self, name: str, ptr: int) -> bool:
        return True

    def execute_async_v3(self, stream: int) -> bool:
        return True


class HostBuffer:
    freed: list[HostBuffer] = []
    ptr = 0

    def reserve(self, nbytes: int) -> None: ...
    def upload(self, array: np.ndarray, stream: Any) -> None: ...
    def download(self, out: np.ndarray, stream: Any) -> np.ndarray:
        out[:] = 1.0
        return out
    def free(self) -> None:
        HostBuffer.freed.append(self)


class HostStream:
    closed = 0
    handle = 0

    def synchronize(self) -> None: ...
    def close(self) -> None:
        HostStream.closed += 1


def _backend(monkeypatch: pytest.MonkeyPatch, accepts_shape: bool = True) -> backend.TensorRTBackend:
    monkeypatch.setattr(cuda_memory, "DeviceBuffer", HostBuffer)
    monkeypatch.setattr(cuda_memory, "Stream", HostStream)
    trt = SimpleNamespace(nptype=lambda dtype: np.float32)
    monkeypatch.setattr(backend, "import_tensorrt", lambda: trt)
    engine = SimpleNamespace(get_tensor_dtype=lambda name: "FLOAT",
                             create_execution_context=lambda: Context(accepts_shape))
    return backend.TensorRTBackend(engine, Path("e.engine"), ("image",), "score", max_batch=4)


def test_a_refused_input_shape_is_an_error_not_a_garbage_score(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(BundleError, match="optimisation profile"):
        _backend(monkeypatch, accepts_shape=False).run(np.zeros((5, 3, 8, 8), np.float32))


def test_close_frees_every_threads_context_stream_and_buffers(monkeypatch: pytest.MonkeyPatch) -> None:
    HostBuffer.freed, HostStream.closed = [], 0
    trt_backend = _backend(monkeypatch)
    worker = threading.Thread(target=trt_backend.run, args=(np.zeros((2, 3, 8, 8), np.float32),))
    worker.start()
    worker.join()
    assert trt_backend.run(np.zeros((2, 3, 8, 8), np.float32)).tolist() == [1.0, 1.0]
    trt_backend.close()
    assert HostStream.closed == 2 and len(HostBuffer.freed) == 4  # two threads x (input + output)
    assert trt_backend.engine is None


def test_the_dla_core_is_set_before_the_engine_is_deserialised() -> None:
    calls: list[str] = []

    class Runtime:
        def __init__(self, logger: Any) -> None: ...
        def __setattr__(self, name: str, value: Any) -> None:
            calls.append(f"{name}={value}")
        def deserialize_cuda_engine(self, data: bytes) -> str:
            calls.append("deserialize")
            return "engine"

    trt = SimpleNamespace(Runtime=Runtime, Logger=lambda severity: None)
    trt.Logger.WARNING = 2  # type: ignore[attr-defined]
    recipe = BuildRecipe(onnx_file="m.onnx", precision="int8", inputs={"image": [3, 8, 8]}, max_batch=1, dla_core=1)
    assert backend.deserialize(trt, b"", recipe) == "engine" and calls == ["DLA_core=1", "deserialize"]
