"""ONNX Runtime backend (``runtime = "onnxruntime"``, ``model_file = "model.onnx"``).

One ``InferenceSession`` per Scorer; ``InferenceSession.run`` is thread-safe, so concurrent
``score`` calls share it without a lock. From the manifest's ``runtime_options`` (written by the
exporter) the backend reads ``graph_optimization_level`` (``"ORT_ENABLE_ALL"``, ...);
``intra_op_num_threads`` is the target's thread count, which ``load`` already applies.

``backend_options``:
    providers            list of execution providers (default ``["CPUExecutionProvider"]``)
    graph_optimization   "all" | "extended" | "basic" | "disable" (default: the manifest's, else "all")
    session_config       {key: value} session config entries, e.g.
                         ``{"session.intra_op.allow_spinning": "0"}`` to stop idle threads spinning
                         (saves power on a camera, costs a little latency)
    inter_op_threads     int (default 1: the graph is a single chain of ops)
    list_streams         sessions of one intra-op thread that score a list's images side by side
                         (:meth:`OnnxRuntimeBackend.throughput`); default: the thread count; 1 turns
                         the list set-up off

Lists: a single image runs on the session with all the threads; a call with several images runs
on a second session of the same network with one intra-op thread, called from ``list_streams``
threads at once (each call then runs on its caller's thread), made on the first such call. The
small layers of the network no longer make the threads wait for each other, and the outputs are
identical (tested): MLAS computes each output the same way whatever the thread count.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from onnxruntime.capi import onnxruntime_pybind11_state as ort_state

from edge_iqa.errors import BundleError, first_line
from edge_iqa.runtime.backends.base import (
    Backend,
    available_cpus,
    check_options,
    input_names,
    list_streams_option,
    member,
    output_name,
)
from edge_iqa.runtime.manifest import Manifest

_OPT_LEVELS = {
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
}
# The exporter records ORT's enum names in the manifest's runtime_options.
_RECORDED_LEVELS = {"ORT_ENABLE_ALL": "all", "ORT_ENABLE_EXTENDED": "extended", "ORT_ENABLE_BASIC": "basic",
                    "ORT_DISABLE_ALL": "disable"}
_OPTIONS = {"providers", "graph_optimization", "session_config", "inter_op_threads", "list_streams"}
# What ORT raises for a network it cannot load or run. UnicodeDecodeError: ORT's message quotes the
# corrupt bytes of the model (a damaged op or tensor name) and the binding fails to decode it.
_ORT_ERRORS = (ort_state.Fail, ort_state.InvalidGraph, ort_state.InvalidProtobuf, ort_state.NotImplemented,
               ort_state.InvalidArgument, ort_state.RuntimeException, ort_state.NoSuchFile, ort_state.NoModel,
               ort_state.EPFail, UnicodeDecodeError)


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"

    def __init__(self, session: ort.InferenceSession, input_names: tuple[str, ...], output: str,
                 threads: int | None, list_sessions: Callable[[], ort.InferenceSession] | None = None,
                 list_streams: int = 1, parallel_calls: int = 1) -> None:
        self.session = session
        self.input_names = input_names
        self.output = output
        self.threads = threads
        self.parallel_calls = parallel_calls
        self.list_streams = list_streams
        self._list_session = list_sessions
        self._list_backend: OnnxRuntimeBackend | None = None
        self._lock = threading.Lock()

    def throughput(self) -> OnnxRuntimeBackend | None:
        if self._list_session is None or self.list_streams < 2:
            return None
        with self._lock:
            if self._list_backend is None:
                self._list_backend = OnnxRuntimeBackend(self._list_session(), self.input_names, self.output, 1,
                                                        parallel_calls=self.list_streams)
            return self._list_backend

    def run(self, *inputs: np.ndarray) -> np.ndarray:
        try:
            (scores,) = self.session.run([self.output], dict(zip(self.input_names, inputs, strict=True)))
        except _ORT_ERRORS as exc:
            # The scorer feeds exactly the shape and dtype the manifest declares, so a failure here
            # means the network does not match its manifest (or is damaged in a checksummed way).
            raise BundleError(f"onnxruntime failed to run the bundle's network on a valid {inputs[0].shape} input "
                              f"({first_line(exc)}); the bundle is inconsistent: re-export it") from exc
        return np.asarray(scores)

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "onnxruntime": ort.__version__, "providers": self.session.get_providers(),
                "threads": self.threads, "list_streams": self.list_streams}


def load(bundle_dir: Path, manifest: Manifest, *, threads: int | None,
         options: Mapping[str, Any]) -> OnnxRuntimeBackend:
    check_options(options, _OPTIONS, "onnxruntime")
    model_path = member(bundle_dir, manifest, manifest.model_file)
    declared = input_names(manifest)

    recorded = manifest.section("runtime_options")
    level = options.get("graph_optimization") or _RECORDED_LEVELS.get(recorded.get("graph_optimization_level"), "all")
    if level not in _OPT_LEVELS:
        raise ValueError(f"graph_optimization must be one of {sorted(_OPT_LEVELS)}, got {level!r}")
    providers = list(options.get("providers", ["CPUExecutionProvider"]))

    def new_session(intra_op_threads: int | None) -> ort.InferenceSession:
        so = ort.SessionOptions()
        if intra_op_threads is not None:
            so.intra_op_num_threads = int(intra_op_threads)
        so.inter_op_num_threads = int(options.get("inter_op_threads", 1))
        so.graph_optimization_level = _OPT_LEVELS[level]
        for key, value in dict(options.get("session_config", {})).items():
            so.add_session_config_entry(str(key), str(value))
        so.log_severity_level = 3  # warnings about unused initialisers etc. are noise on a camera
        try:
            return ort.InferenceSession(str(model_path), sess_options=so, providers=providers)
        except _ORT_ERRORS as exc:
            # A network this ORT cannot run (newer opset, unknown op, corrupt protobuf) is a bundle problem.
            raise BundleError(f"{model_path}: onnxruntime {ort.__version__} cannot load the network "
                              f"({first_line(exc)}); "
                              "re-export the bundle for this onnxruntime version or upgrade onnxruntime") from exc

    session = new_session(threads)

    inputs = sorted(i.name for i in session.get_inputs())
    if inputs != sorted(declared):
        raise BundleError(f"{model_path}: the network's inputs {inputs} do not match the manifest's "
                          f"{list(declared)}; the bundle is inconsistent, re-export it")
    outputs = [o.name for o in session.get_outputs()]
    wanted = output_name(manifest) or outputs[0]
    if wanted not in outputs:
        raise BundleError(f"{model_path}: the manifest's output {wanted!r} is not among the network's outputs "
                          f"{outputs}; re-export the bundle")
    streams = list_streams_option(options, threads or available_cpus())
    if providers != ["CPUExecutionProvider"]:
        return OnnxRuntimeBackend(session, declared, wanted, threads)  # a GPU keeps its single session
    return OnnxRuntimeBackend(session, declared, wanted, threads, lambda: new_session(1), list_streams=streams)

