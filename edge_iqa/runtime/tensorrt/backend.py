"""TensorRT backend: builds the engine on first load (cached per GPU + TensorRT version +
precision), then runs it through TensorRT's I/O tensor API with cuda-python device buffers.

Not run on the project's machines (no NVIDIA GPU, and TensorRT's PyPI library wheels there are
placeholders); every TensorRT name it uses is checked against the real bindings of each supported
release (``tests/test_tensorrt_api.py``). See docs/tensorrt.md "What has run where".

Options (``load(bundle, backend_options=...)``):
  engine   explicit engine file (its ``.json`` metadata must match this device)
  rebuild  build even if a cached engine exists
  verbose  TensorRT verbose logging for the build
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from edge_iqa.errors import BundleError, EngineMismatchError
from edge_iqa.runtime.backends.base import Backend, check_options, input_names, input_record, output_name
from edge_iqa.runtime.manifest import Manifest
from edge_iqa.runtime.tensorrt import cuda_memory
from edge_iqa.runtime.tensorrt.builder import build_engine, current_device_key, import_tensorrt
from edge_iqa.runtime.tensorrt.cache import check_engine_metadata, engine_paths
from edge_iqa.runtime.tensorrt.recipe import BuildRecipe, read_recipe

OPTIONS = {"engine", "rebuild", "verbose"}


class _ThreadState:
    """One execution context, stream and buffer set per thread: contexts are not thread-safe."""

    def __init__(self, engine: Any, inputs: tuple[str, ...]) -> None:
        self.context = engine.create_execution_context()
        if self.context is None:
            raise RuntimeError("TensorRT could not create an execution context (out of GPU memory?)")
        self.stream = cuda_memory.Stream()
        self.inputs = {name: cuda_memory.DeviceBuffer() for name in inputs}
        self.output = cuda_memory.DeviceBuffer()

    def close(self) -> None:
        self.stream.synchronize()
        for buffer in (*self.inputs.values(), self.output):
            buffer.free()
        self.stream.close()
        self.context = None  # the bindings free the context when the last reference goes


class TensorRTBackend(Backend):
    name = "tensorrt"

    def __init__(self, engine: Any, engine_path: Path, input_names: tuple[str, ...], output: str,
                 max_batch: int) -> None:
        trt = import_tensorrt()
        self.engine, self.engine_path = engine, engine_path
        self.input_names, self.output_name, self.max_batch = input_names, output, max_batch
        self.output_dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(output)))
        self._local = threading.local()
        self._states: list[_ThreadState] = []  # every thread's state, so close() frees them all
        self._lock = threading.Lock()

    def _state(self) -> _ThreadState:
        state = getattr(self._local, "state", None)
        if state is None:
            state = self._local.state = _ThreadState(self.engine, self.input_names)
            with self._lock:
                self._states.append(state)
        return state

    def run(self, *inputs: np.ndarray) -> np.ndarray:
        state = self._state()
        out = np.empty((inputs[0].shape[0],), dtype=self.output_dtype)
        # Kept referenced until the stream is synchronised: the uploads are asynchronous.
        arrays = [np.ascontiguousarray(array, dtype=np.float32) for array in inputs]
        for name, array in zip(self.input_names, arrays, strict=True):
            if not state.context.set_input_shape(name, tuple(array.shape)):
                raise BundleError(f"TensorRT refused input shape {tuple(array.shape)} for {name!r}: outside the "
                                  f"engine's optimisation profile (batch 1..{self.max_batch} at the exported size)")
            state.inputs[name].upload(array, state.stream)
            state.context.set_tensor_address(name, state.inputs[name].ptr)
        state.output.reserve(out.nbytes)
        state.context.set_tensor_address(self.output_name, state.output.ptr)
        if not state.context.execute_async_v3(state.stream.handle):
            raise RuntimeError("TensorRT execution failed; see the TensorRT log above")
        state.output.download(out, state.stream)
        state.stream.synchronize()
        return out

    def close(self) -> None:
        """Free every thread's context, stream and device buffers, then the engine."""
        with self._lock:
            states, self._states = self._states, []
        for state in states:
            state.close()
        self._local = threading.local()
        self.engine = None

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "engine": self.engine_path.name, "max_batch": self.max_batch}


def load(bundle_dir: Path, manifest: Manifest, *, threads: int | None, options: dict[str, Any]) -> Backend:
    check_options(options, OPTIONS, "tensorrt")
    if input_record(manifest).pixels:
        raise BundleError("this TensorRT bundle declares a uint8 pixel input, which edge-iqa's TensorRT targets do not "
                          "export (float32 rows only); re-export it with this edge-iqa")
    trt = import_tensorrt()
    recipe = read_recipe(bundle_dir)
    key = current_device_key(recipe, manifest.sha256(recipe.onnx_file))
    if options.get("engine"):
        engine_path = Path(options["engine"])
        check_engine_metadata(engine_path.with_suffix(".json"), key)
    else:
        engine_path, metadata_path = engine_paths(bundle_dir, key)
        if engine_path.is_file() and not options.get("rebuild"):
            check_engine_metadata(metadata_path, key)
        else:
            build_engine(bundle_dir, recipe, key, verbose=bool(options.get("verbose")))
    engine = deserialize(trt, engine_path.read_bytes(), recipe)
    if engine is None:
        raise EngineMismatchError(f"TensorRT {trt.__version__} could not deserialize {engine_path.name}; "
                                  "rebuild it on this device with `edge-iqa build-engine BUNDLE --rebuild`")
    output = output_name(manifest) or "score"
    return TensorRTBackend(engine, engine_path, input_names(manifest), output, recipe.max_batch)


def deserialize(trt: Any, engine_bytes: bytes, recipe: BuildRecipe) -> Any:
    """The engine (None if TensorRT refuses it). A DLA engine needs the runtime's DLA core set
    *before* deserialising; otherwise it is loaded for core 0 whatever it was built for."""
    runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
    if recipe.dla_core is not None:
        runtime.DLA_core = recipe.dla_core
    return runtime.deserialize_cuda_engine(engine_bytes)
