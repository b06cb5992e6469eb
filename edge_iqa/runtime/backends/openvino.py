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

``backend_options``:
    device     OpenVINO device name (default "CPU")
    config     {property: value} passed to ``compile_model`` over the defaults below
    cache_dir  root folder of OpenVINO's compiled-model cache (faster start on the next boot); default:
               ``$EDGE_IQA_CACHE_DIR/openvino``, else ``$XDG_CACHE_HOME/edge-iqa/openvino`` (XDG default
               ``~/.cache``) when it can be created and written, else none; ``None`` or ``""`` (or
               ``EDGE_IQA_CACHE_DIR=""``) turns it off. Each network compiles into its own sub-folder,
               and the least recently used are removed beyond ``$EDGE_IQA_CACHE_MAX_MB`` (default
               1024 MB) of the root (:mod:`edge_iqa.runtime.compile_cache`)
    list_streams  streams of the list set-up (:meth:`OpenVINOBackend.throughput`); default: the
               compiled model's thread count; 1 turns the list set-up off

Lists: a single image runs on the latency compile (one stream, all threads on every layer). A
call with several images runs on a second compile of the same network, made on the first such
call (from the cache when warm): ``PERFORMANCE_HINT = THROUGHPUT`` with one stream of one thread
per thread of the budget, each image in its own stream. The network's small layers then keep
every core busy instead of making the threads wait for each other at each layer. Outputs are
identical (INT8 and FP32 bundles, tested): the kernels are the same, only the threads differ.

The compiled-model cache is on by default: OpenVINO keys each blob by the network's bytes, the
device and the compile properties, so a changed bundle or setting compiles afresh; the blobs of
one network share a sub-folder of the cache root, and the root is kept within a size limit by
removing the least recently used networks (``compile_cache``). A warm cache skips the CPU
plugin's graph transformations and kernel selection at ``load`` (the blob holds the same compiled
graph, so scores do not change).

Snippets: OpenVINO's CPU plugin fuses element-wise + FakeQuantize chains into JIT "Subgraph"
kernels only when shapes are static. Their FakeQuantize arithmetic rounds differently at bin
edges, which moved the default INT8 bundle's real-photo scores by up to 2.4 MOS points between a
static batch-1 compile and the dynamic one (commit 74929d7); with ``SNIPPETS_MODE=DISABLE`` the two
agree to 5e-6 MOS, and the dynamic compile's scores do not change at all (measured on 40 CLIVE
photos, ``scripts/ov_static_batch.py``). The runtime compiles the bundle's dynamic network, so it
leaves the mode alone.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge_iqa.data.preprocess import PreprocessSpec
from edge_iqa.errors import BundleError, first_line
from edge_iqa.runtime import compile_cache
from edge_iqa.runtime.backends.base import (
    Backend,
    InputRecord,
    check_options,
    input_names,
    input_record,
    input_records,
    list_streams_option,
    member,
    output_name,
)
from edge_iqa.runtime.backends.openvino_import import import_openvino
from edge_iqa.runtime.manifest import Manifest

ov = import_openvino()  # without the model-conversion tools: faster start (see openvino_import)

_OPTIONS = {"device", "config", "cache_dir", "list_streams"}


class OpenVINOBackend(Backend):
    name = "openvino"

    def __init__(self, compiled: ov.CompiledModel, input_names: tuple[str, ...], output: ov.Output, device: str,
                 config: dict[str, Any], cache_dir: str | None = None, list_setup: _ListSetup | None = None,
                 parallel_calls: int = 1) -> None:
        self.compiled = compiled
        self.input_names = input_names
        self.output = output
        self.device = device
        self.config = config
        self.cache_dir = cache_dir
        self.parallel_calls = parallel_calls
        self._idle: queue.SimpleQueue[ov.InferRequest] = queue.SimpleQueue()
        self._list_setup = list_setup
        self._list_backend: OpenVINOBackend | None = None
        self._lock = threading.Lock()

    def throughput(self) -> OpenVINOBackend | None:
        setup = self._list_setup
        if setup is None or setup.streams < 2:
            return None
        with self._lock:
            if self._list_backend is None:
                config = {**self.config, "PERFORMANCE_HINT": "THROUGHPUT", "NUM_STREAMS": setup.streams,
                          "INFERENCE_NUM_THREADS": setup.streams}
                compiled = _compile(setup.core, setup.model, self.device, config, setup.xml)
                output = compiled.outputs[setup.output_index]
                self._list_backend = OpenVINOBackend(compiled, self.input_names, output, self.device, config,
                                                     self.cache_dir, parallel_calls=setup.streams)
            return self._list_backend

    def _borrow(self) -> ov.InferRequest:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            return self.compiled.create_infer_request()

    def run(self, *inputs: np.ndarray) -> np.ndarray:
        request = self._borrow()
        try:
            return self._infer(request, inputs)
        finally:
            self._idle.put(request)

    def _infer(self, request: ov.InferRequest, inputs: tuple[np.ndarray, ...]) -> np.ndarray:
        try:
            # share_inputs: the request reads the scorer's buffers in place instead of copying them
            # (a 16-row batch is 28 MB at 384x384); they stay valid and unchanged during the call.
            results = request.infer(dict(zip(self.input_names, inputs, strict=True)), share_inputs=True)
            # The result views the request's own buffer, which the next call overwrites: copy.
            return np.array(results[self.output], copy=True)
        except (RuntimeError, UnicodeDecodeError) as exc:
            # The scorer feeds exactly the declared shape: a failure is the network's, not the input's.
            raise BundleError(f"OpenVINO failed to run the bundle's network on a valid {inputs[0].shape} input "
                              f"({first_line(exc)}); the bundle is inconsistent: re-export it") from exc

    def warm_up(self, records: list[InputRecord], size: tuple[int, int]) -> None:
        """Run the network once, on this thread, on one row of zeros per input (``size``: the crops'
        (H, W) where the network's sides are dynamic), before any caller can run it from several threads.

        Why: OpenVINO's Python bindings build some lookup tables on their first use, inside
        ``infer`` (``Type.to_dtype``'s table of numpy dtypes, a C++ function-local static that makes
        numpy objects). When two threads make the first call at the same time, one builds the table
        and waits for the GIL while the other holds the GIL and waits for the table: both wait
        forever (OpenVINO 2026.4; two threads racing on their first ``Type.f32.to_dtype()`` hang in
        about half of fresh processes, tests/test_runtime_openvino_first_call.py). A collection job's
        two scoring threads, or a Ray actor's two concurrent calls, hung that way. The tables are
        per process, so one call here makes every later ``infer`` safe; its request is dropped so
        the pool holds only requests that callers made.
        """
        zeros = tuple(np.zeros((max(r.batch, 1), *r.row_shape(tuple(d if d > 0 else s for d, s in
                                                                   zip(r.size, size, strict=True)))), r.numpy_dtype)
                      for r in records)
        self._infer(self.compiled.create_infer_request(), zeros)

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "openvino": ov.__version__, "device": self.device,
                "config": {k: str(v) for k, v in self.config.items()}, "cache_dir": self.cache_dir,
                "list_streams": self._list_setup.streams if self._list_setup else self.parallel_calls}


@dataclass(frozen=True)
class _ListSetup:
    """What compiling the list set-up later needs: the read network and where it came from."""

    core: ov.Core
    model: ov.Model
    xml: Path
    output_index: int
    streams: int


#: OpenVINO's run-time attribute that keeps a Divide a division: its transformations otherwise turn
#: ``x / c`` into ``x * (1 / c)``, which differs from the division in the last bit for some x.
NONCONVERTIBLE_DIVIDE = "nonconvertable_divide_0"  # (sic: OpenVINO's spelling)
#: The ops a pixel-input network's normalisation is made of, before and after OpenVINO rewrote it.
_FRONT_OPS = {"Convert", "Multiply", "Add", "Divide", "Subtract", "Transpose"}
#: The name of the rebuilt front's last op, so that a network saved with it is recognised again.
FRONT_END_NAME = "edge_iqa_pixel_rows"


def exact_pixel_front(model: ov.Model, spec: PreprocessSpec) -> None:
    """Replace the normalisation at the front of a pixel-input network by its exact form.

    A uint8-input bundle's first ops scale and normalise the pixels
    (:class:`edge_iqa.export.onnx_export.ScoreWrapper`: ``/ 255``, ``- mean``, ``/ std`` in float32,
    then NHWC -> NCHW), the operations of the runtime's lookup table for float-input bundles.
    OpenVINO rewrites them on conversion and compile (reciprocal multiplications, one fused
    scale-shift, even folded into the first convolution's weights), which moves the first layer's
    input by a float32 step for some pixel values; an INT8 network turns such steps into score
    changes of whole MOS points at its quantizers' bin edges (docs/benchmarks.md). Rebuilt here
    from the bundle's spec, with the divisions kept as divisions, the network computes on exactly
    the float rows a float-input bundle is fed, so both score alike, INT8 included. Every reader of
    the network (export calibration, this backend, the native library) applies it after reading:
    the attribute that keeps a division is not saved in the IR."""
    end = _front_end(model)
    rows = _exact_front(model.inputs[0], spec)
    for target in end.output(0).get_target_inputs():
        target.replace_source_output(rows.output(0))
    model.validate_nodes_and_infer_types()


def with_pixel_front(model: ov.Model, spec: PreprocessSpec, input_name: str) -> ov.Model:
    """A float-input network (``(N, 3, H, W)`` normalised rows) as a pixel-input one: a uint8
    ``(N, H, W, 3)`` input named ``input_name`` and the exact front of :func:`exact_pixel_front`
    in front of what read the rows. For networks that come into OpenVINO without the pixel
    front (converted from PyTorch: ``edge_iqa.export.qat``); the front's last op carries the
    name the runtime finds it by, so a bundle of it loads like any pixel bundle."""
    import openvino.opset13 as ops

    (rows,) = model.get_parameters()
    shape = rows.get_partial_shape()
    pixels = ops.parameter(ov.PartialShape([shape[0], shape[2], shape[3], shape[1]]), ov.Type.u8, name=input_name)
    pixels.output(0).get_tensor().set_names({input_name})
    front = _exact_front(pixels.output(0), spec)
    for target in rows.output(0).get_target_inputs():
        target.replace_source_output(front.output(0))
    converted = ov.Model(model.get_results(), [pixels], model.get_friendly_name())
    converted.validate_nodes_and_infer_types()
    return converted


def _exact_front(pixels: ov.Output, spec: PreprocessSpec) -> ov.Node:
    """uint8 NHWC pixels -> the float32 NCHW rows of ``spec``, divisions kept as divisions."""
    import openvino.opset13 as ops

    def exact_divide(x: ov.Node, divisor: np.ndarray) -> ov.Node:
        node = ops.divide(x, ops.constant(divisor))
        node.get_rt_info()[NONCONVERTIBLE_DIVIDE] = True
        return node

    # NCHW first (on the bytes: a quarter of the traffic), so that the per-channel constants broadcast
    # over planes: OpenVINO's division broadcasting over the last axis of NHWC ran 5x slower.
    planes = ops.transpose(pixels, ops.constant(np.array([0, 3, 1, 2], np.int64)))
    nchw = exact_divide(ops.convert(planes, "f32"), np.float32(255.0))
    if spec.normalize:
        mean, std = (np.asarray(values, np.float32).reshape(1, 3, 1, 1) for values in (spec.mean, spec.std))
        nchw = exact_divide(ops.subtract(nchw, ops.constant(mean)), std)
    nchw.set_friendly_name(FRONT_END_NAME)
    return nchw


def as_runtime_compiles(model: ov.Model, manifest: Manifest) -> None:
    """A bundle's IR as read -> the network the runtime compiles: a pixel-input network gets its
    exact front (:func:`exact_pixel_front`); a float-input one is left as it is. Every reader of a
    bundle's IR that compiles it (this backend, the profiling scripts) calls this."""
    if input_record(manifest).pixels:
        exact_pixel_front(model, PreprocessSpec.from_dict(manifest.preprocess))


def _front_end(model: ov.Model) -> ov.Node:
    """The last op of a pixel-input network's front: the op a front rebuilt before names (the export
    saves the calibrated network with it), else the exported graph's NCHW transpose (ScoreWrapper
    normalises, then permutes). Never past either, into the model's own ops. (The pixels also feed
    shape-only ops, e.g. the ShapeOf of a dynamic batch: not the front.)"""
    rebuilt = next((op for op in model.get_ordered_ops() if op.get_friendly_name() == FRONT_END_NAME), None)
    if rebuilt is not None:
        return rebuilt
    end = model.inputs[0].get_node()
    while end.get_type_name() != "Transpose":
        front = [c.get_node() for c in end.output(0).get_target_inputs() if c.get_node().get_type_name() in _FRONT_OPS]
        if len(front) != 1:
            raise BundleError("the bundle declares a uint8 pixel input but its network does not start with the "
                              "pixels' normalisation; re-export the bundle")
        end = front[0]
    return end


def _compile(core: ov.Core, model: ov.Model, device: str, config: Mapping[str, Any], xml: Path) -> ov.CompiledModel:
    try:
        return core.compile_model(model, device, dict(config))
    except (RuntimeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{xml}: OpenVINO {ov.__version__} cannot compile the network for {device} "
                          f"({first_line(exc)}); re-export the bundle, or check the device and "
                          "backend_options") from exc


def default_config(manifest: Manifest, threads: int | None) -> dict[str, Any]:
    """compile_model properties: ours < the bundle's ``runtime_options`` < an explicit thread count."""
    config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY"}
    if manifest.precision in ("fp32", "int8"):
        config["INFERENCE_PRECISION_HINT"] = "f32"
    recorded = manifest.section("runtime_options")  # written by the exporter: OpenVINO property -> value
    config.update({str(k): v for k, v in recorded.items() if isinstance(v, (str, int, float, bool))})
    if threads is not None:
        config["INFERENCE_NUM_THREADS"] = int(threads)
    return config


def default_cache_dir() -> Path | None:
    """The user's compiled-model cache folder, created if needed; None when it cannot be written
    (a read-only home on a camera): the runtime then compiles at every start, as before."""
    root = os.environ.get("EDGE_IQA_CACHE_DIR")
    if root is None:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        root = os.path.join(base, "edge-iqa")
    if not root:
        return None  # EDGE_IQA_CACHE_DIR="" turns the cache off
    folder = Path(root) / "openvino"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return folder if os.access(folder, os.W_OK | os.X_OK) else None


def load(bundle_dir: Path, manifest: Manifest, *, threads: int | None,
         options: Mapping[str, Any]) -> OpenVINOBackend:
    check_options(options, _OPTIONS, "openvino")
    xml = member(bundle_dir, manifest, manifest.model_file)
    if xml.suffix == ".onnx":  # OpenVINO reads ONNX itself (a depth network): no separate weights file
        weights = None
        network_files = [manifest.model_file]
    else:
        weights_name = manifest.get("weights_file") or Path(manifest.model_file).with_suffix(".bin").as_posix()
        weights = member(bundle_dir, manifest, weights_name)
        network_files = [manifest.model_file, weights_name]
    declared = input_names(manifest)
    device = str(options.get("device", "CPU"))
    config = {**default_config(manifest, threads), **dict(options.get("config", {}))}

    core = ov.Core()
    root = options["cache_dir"] if "cache_dir" in options else default_cache_dir()
    cache_limit = compile_cache.limit_bytes()  # a bad $EDGE_IQA_CACHE_MAX_MB fails before the compile
    cache = compile_cache.network_folder(root, compile_cache.network_key(manifest, bundle_dir, network_files)) \
        if root else None
    if cache:
        core.set_property({"CACHE_DIR": str(cache)})
    try:
        model = core.read_model(str(xml)) if weights is None else core.read_model(model=str(xml), weights=str(weights))
    except (RuntimeError, UnicodeDecodeError) as exc:  # the message may quote the corrupt bytes
        raise BundleError(f"{xml}: OpenVINO {ov.__version__} cannot read the IR ({first_line(exc)}); re-export "
                          "the bundle for this OpenVINO version or upgrade openvino") from exc
    as_runtime_compiles(model, manifest)
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
    compiled = _compile(core, model, device, config, xml)
    if cache:
        compile_cache.evict(root, cache, cache_limit)
    streams = list_streams_option(options, int(compiled.get_property("INFERENCE_NUM_THREADS")))
    output = compiled.outputs[index]
    backend = OpenVINOBackend(compiled, declared, output, device, config, str(cache) if cache else None,
                              list_setup=_ListSetup(core, model, xml, index, streams))
    # Where the network's sides are dynamic: the bundle's preprocessed size; a depth network (loaded
    # without a preprocessing spec) gets a square that common depth models accept (multiple of 14 and 32).
    size = PreprocessSpec.from_dict(manifest.preprocess).input_size if manifest.preprocess else (224, 224)
    backend.warm_up(input_records(manifest), size)
    return backend

