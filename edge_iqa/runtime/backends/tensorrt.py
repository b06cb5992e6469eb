"""TensorRT backend: builds the engine on first load (cached per GPU + TensorRT version +
precision), then runs it through TensorRT's I/O tensor API with cuda-python device buffers.

Not run on the project's machines (no NVIDIA GPU, and TensorRT's PyPI wheels there are
placeholders): written against the TensorRT 10 Python API, see README "What has not run".

Options (``load(bundle, backend_options=...)``):
  engine   explicit engine file (its ``.json`` metadata must match this device)
  rebuild  build even if a cached engine exists
  verbose  TensorRT verbose logging for the build
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from edge_iqa.errors import EngineMismatchError
from edge_iqa.runtime.backends.base import Backend, check_options, input_names, output_name
from edge_iqa.runtime.cuda_memory import DeviceBuffer, Stream
from edge_iqa.runtime.tensorrt_engine import (
    build_engine,
    check_engine_metadata,
    current_device_key,
    engine_paths,
    import_tensorrt,
    read_recipe,
)

OPTIONS = {"engine", "rebuild", "verbose"}


class _ThreadState:
    """One execution context, stream and buffer set per thread: contexts are not thread-safe."""

    def __init__(self, engine: Any, inputs: tuple[str, ...]) -> None:
        self.context = engine.create_execution_context()
        self.stream = Stream()
        self.inputs = {name: DeviceBuffer() for name in inputs}
        self.output = DeviceBuffer()


class TensorRTBackend(Backend):
    name = "tensorrt"

    def __init__(self, engine: Any, engine_path: Path, input_names: tuple[str, ...], output: str,
                 max_batch: int) -> None:
        trt = import_tensorrt()
        self.engine, self.engine_path = engine, engine_path
        self.input_names, self.output_name, self.max_batch = input_names, output, max_batch
        self.output_dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(output)))
        self._local = threading.local()

    def _state(self) -> _ThreadState:
        state = getattr(self._local, "state", None)
        if state is None:
            state = self._local.state = _ThreadState(self.engine, self.input_names)
        return state

    def run(self, *inputs: np.ndarray) -> np.ndarray:
        state = self._state()
        out = np.empty((inputs[0].shape[0],), dtype=self.output_dtype)
        # Kept referenced until the stream is synchronised: the uploads are asynchronous.
        arrays = [np.ascontiguousarray(array, dtype=np.float32) for array in inputs]
        for name, array in zip(self.input_names, arrays, strict=True):
            state.context.set_input_shape(name, tuple(array.shape))
            state.inputs[name].upload(array, state.stream)
            state.context.set_tensor_address(name, state.inputs[name].ptr)
        state.output.reserve(out.nbytes)
        state.context.set_tensor_address(self.output_name, state.output.ptr)
        if not state.context.execute_async_v3(state.stream.handle):
            raise RuntimeError("TensorRT execution failed; see the TensorRT log above")
        state.output.download(out, state.stream)
        state.stream.synchronize()
        return out

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "engine": self.engine_path.name, "max_batch": self.max_batch}


def load(bundle_dir: Path, manifest: Mapping[str, Any], *, threads: int | None, options: dict[str, Any]) -> Backend:
    check_options(options, OPTIONS, "tensorrt")
    trt = import_tensorrt()
    recipe = read_recipe(bundle_dir)
    onnx_sha256 = manifest["files"][recipe.onnx_file]["sha256"]
    key = current_device_key(recipe.precision, onnx_sha256, recipe.dla_core)
    if options.get("engine"):
        engine_path = Path(options["engine"])
        check_engine_metadata(engine_path.with_suffix(".json"), key)
    else:
        engine_path, metadata_path = engine_paths(bundle_dir, key)
        if engine_path.is_file() and not options.get("rebuild"):
            check_engine_metadata(metadata_path, key)
        else:
            build_engine(bundle_dir, recipe, key, verbose=bool(options.get("verbose")))
    runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
    engine = runtime.deserialize_cuda_engine(engine_path.read_bytes())
    if engine is None:
        raise EngineMismatchError(f"TensorRT {trt.__version__} could not deserialize {engine_path.name}; "
                                  "rebuild it on this device with `edge-iqa build-engine BUNDLE --rebuild`")
    output = output_name(manifest) or "score"
    return TensorRTBackend(engine, engine_path, input_names(manifest), output, recipe.max_batch)
