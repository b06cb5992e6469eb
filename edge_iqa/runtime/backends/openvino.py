"""OpenVINO backend (``runtime = "openvino"``, ``model_file = "model.xml"`` + ``model.bin``).

Thread use: a ``CompiledModel`` may be shared, an ``InferRequest`` may not. Each ``run`` borrows
an idle request from a pool (creating one when all are busy) and returns it afterwards, so N
concurrent callers use at most N requests and never share one.

Precision: OpenVINO's CPU plugin runs float layers in bf16/fp16 by default on CPUs that support
it (AVX512-BF16, AMX, ARM fp16): on the build machine's AVX512-BF16 CPU the default hint is bf16,
which moved the test network's scores by up to 0.04 (on a 0-100 scale) against 0.0 with f32. The
accuracy of an fp32 or int8 bundle was measured at f32, so the backend asks for
``INFERENCE_PRECISION_HINT = f32`` unless the bundle is fp16 or ``backend_options["config"]`` says
otherwise.

The manifest's ``runtime_options`` (written by the exporter, e.g. ``{"INFERENCE_PRECISION_HINT":
"f16"}`` for an fp16 bundle) are passed to ``compile_model`` over these defaults.

Batch 1 gets its own static-shape compile. Bundles have a dynamic batch axis, and OpenVINO's CPU
plugin runs a dynamic-shape network slower than a static one (shape inference and memory planning
per call): on the default model's INT8 bundle, batch-1 p50 was 8.5 ms dynamic vs 6.4-7.4 ms static
(2 threads, `scripts/ov_static_batch.py`). A camera scores one image at a time, so load() compiles
the network reshaped to batch 1, and the dynamic network is compiled only when a call first brings
more rows (once, under a lock). ``backend_options={"static_batch_one": False}`` turns it off.

``backend_options``:
    device            OpenVINO device name (default "CPU")
    config            {property: value} passed to ``compile_model`` over the defaults below
    cache_dir         folder for OpenVINO's compiled-model cache (faster start on the next boot)
    static_batch_one  compile a static batch-1 network for 1-row calls (default True)
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import openvino as ov

from edge_iqa.errors import BundleError
from edge_iqa.runtime.backends.base import Backend, check_options, input_names, member, output_name

_OPTIONS = {"device", "config", "cache_dir", "static_batch_one"}


class _Compiled:
    """One compiled network and its pool of idle infer requests."""

    def __init__(self, compiled: ov.CompiledModel, output_index: int) -> None:
        self.compiled = compiled
        self.output = compiled.outputs[output_index]
        self._idle: queue.SimpleQueue[ov.InferRequest] = queue.SimpleQueue()

    def run(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        try:
            request = self._idle.get_nowait()
        except queue.Empty:
            request = self.compiled.create_infer_request()
        try:
            results = request.infer(feed)
            # The result views the request's own buffer, which the next call overwrites: copy.
            return np.array(results[self.output], copy=True)
        finally:
            self._idle.put(request)


class OpenVINOBackend(Backend):
    name = "openvino"

    def __init__(self, compile_fn: Callable[[int | None], _Compiled], input_names: tuple[str, ...],
                 device: str, config: dict[str, Any], static_batch_one: bool) -> None:
        self._compile = compile_fn
        self.input_names = input_names
        self.device = device
        self.config = config
        self._lock = threading.Lock()
        # None: the network as exported (dynamic batch); 1: reshaped to a static batch of one.
        self._networks: dict[int | None, _Compiled] = {}
        self._static_one = static_batch_one
        self._networks[1 if static_batch_one else None] = compile_fn(1 if static_batch_one else None)

    def _network(self, rows: int) -> _Compiled:
        key = 1 if (rows == 1 and self._static_one) else None
        network = self._networks.get(key)
        if network is None:
            with self._lock:
                network = self._networks.get(key)
                if network is None:
                    network = self._networks[key] = self._compile(key)
        return network

    @property
    def compiled(self) -> ov.CompiledModel:
        """The network compiled at load (batch 1 when ``static_batch_one``)."""
        return next(iter(self._networks.values())).compiled

    def run(self, *inputs: np.ndarray) -> np.ndarray:
        try:
            return self._network(len(inputs[0])).run(dict(zip(self.input_names, inputs, strict=True)))
        except (RuntimeError, UnicodeDecodeError) as exc:
            # The scorer feeds exactly the declared shape: a failure is the network's, not the input's.
            raise BundleError(f"OpenVINO failed to run the bundle's network on a valid {inputs[0].shape} input "
                              f"({_first_line(exc)}); the bundle is inconsistent: re-export it") from exc

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "openvino": ov.__version__, "device": self.device,
                "config": {k: str(v) for k, v in self.config.items()}}


def default_config(manifest: Mapping[str, Any], threads: int | None) -> dict[str, Any]:
    """compile_model properties: ours < the bundle's ``runtime_options`` < an explicit thread count."""
    config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY"}
    if manifest.get("precision") in ("fp32", "int8"):
        config["INFERENCE_PRECISION_HINT"] = "f32"
    recorded = manifest.get("runtime_options")
    if isinstance(recorded, Mapping):  # written by the exporter: OpenVINO property name -> value
        config.update({str(k): v for k, v in recorded.items() if isinstance(v, (str, int, float, bool))})
    if threads is not None:
        config["INFERENCE_NUM_THREADS"] = int(threads)
    return config


def load(bundle_dir: Path, manifest: Mapping[str, Any], *, threads: int | None,
         options: Mapping[str, Any]) -> OpenVINOBackend:
    check_options(options, _OPTIONS, "openvino")
    xml = member(bundle_dir, manifest, manifest["model_file"])
    weights_name = manifest.get("weights_file") or Path(manifest["model_file"]).with_suffix(".bin").as_posix()
    weights = member(bundle_dir, manifest, weights_name)
    declared = input_names(manifest)
    device = str(options.get("device", "CPU"))
    config = {**default_config(manifest, threads), **dict(options.get("config", {}))}

    core = ov.Core()
    if options.get("cache_dir"):
        core.set_property({"CACHE_DIR": str(options["cache_dir"])})
    try:
        model = core.read_model(model=str(xml), weights=str(weights))
    except (RuntimeError, UnicodeDecodeError) as exc:  # the message may quote the corrupt bytes
        raise BundleError(f"{xml}: OpenVINO {ov.__version__} cannot read the IR ({_first_line(exc)}); re-export "
                          "the bundle for this OpenVINO version or upgrade openvino") from exc
    names = [port.get_any_name() for port in model.inputs]
    if len(model.inputs) != len(declared) or not all(any(name in port.get_names() for port in model.inputs)
                                                     for name in declared):
        raise BundleError(f"{xml}: the network's inputs {names} do not match the manifest's {list(declared)}; "
                          "the bundle is inconsistent, re-export it")
    wanted = output_name(manifest)
    index = next((i for i, port in enumerate(model.outputs) if wanted is None or wanted in port.get_names()), None)
    if index is None:
        raise BundleError(f"{xml}: the manifest's output {wanted!r} is not among the network's outputs "
                          f"{[p.get_any_name() for p in model.outputs]}; re-export the bundle")
    dynamic_batch = all(port.get_partial_shape().rank.is_static and port.get_partial_shape()[0].is_dynamic
                        for port in model.inputs)
    static_batch_one = bool(options.get("static_batch_one", True)) and dynamic_batch

    def compile_network(batch: int | None) -> _Compiled:
        network = model
        if batch is not None:  # the same network with every input's batch axis fixed
            network = model.clone()
            network.reshape({port.get_any_name(): [batch, *list(port.get_partial_shape())[1:]]
                             for port in network.inputs})
        try:
            return _Compiled(core.compile_model(network, device, config), index)
        except (RuntimeError, UnicodeDecodeError) as exc:
            raise BundleError(f"{xml}: OpenVINO {ov.__version__} cannot compile the network for {device} "
                              f"({_first_line(exc)}); re-export the bundle, or check the device and "
                              "backend_options") from exc

    return OpenVINOBackend(compile_network, declared, device, config, static_batch_one)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
