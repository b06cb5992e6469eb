"""The backend interface: the only thing the scorer knows about ONNX Runtime, OpenVINO or TensorRT.

A backend module (``edge_iqa/runtime/backends/<name>.py``) provides one function::

    def load(bundle_dir: Path, manifest: dict, *, threads: int | None, options: dict) -> Backend

called only after the manifest and every file checksum have been verified and the backend's
library has been imported successfully (see :mod:`edge_iqa.runtime.backends`). It returns a
:class:`Backend`, which runs batches of already-preprocessed tensors. Everything else (decoding,
the preprocessing spec, batching, padding to a fixed batch, crop averaging, the output transform,
thread-safety of the public API) lives in :class:`edge_iqa.runtime.scorer.Scorer`, so a new
backend is about fifty lines.

Contract of :meth:`Backend.run`:

- input: one C-contiguous float32 array of shape ``(n, 3, H, W)`` per network input, positional,
  in the order of the manifest's ``io.inputs`` (:func:`input_records`): just the image for most
  models, the image and its depth crops for an ``image`` + ``depth`` network (DGIQA), all with the
  same ``n``, ``1 <= n <= max_batch`` (exactly ``fixed_batch`` rows when the bundle's network has
  a static batch: the scorer pads); the arrays are the scorer's buffers, valid only during the
  call: copy them if you keep them;
- output: a 1-D array of ``n`` raw scores (any float dtype; the scorer converts to float64),
  owned by the caller (copy out of any buffer the backend reuses);
- it may be called concurrently from several threads and must then return exactly what a
  single thread would (ORT sessions are thread-safe; OpenVINO needs one infer request per
  concurrent call; a TensorRT backend needs one execution context + stream per concurrent call
  or a lock);
- errors from the library are re-raised as :class:`~edge_iqa.errors.EdgeIQAError` subclasses
  only where the cause is the bundle (:class:`~edge_iqa.errors.BundleError`); anything else
  propagates.
"""

from __future__ import annotations

import abc
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from edge_iqa.errors import BundleError
from edge_iqa.runtime.manifest import Manifest


class Backend(abc.ABC):
    """A loaded network that maps ``(n, 3, H, W)`` float32 to ``n`` raw scores."""

    #: The manifest's ``runtime`` value this backend serves.
    name: str = ""
    #: Most rows one ``run`` accepts when the network itself limits it (e.g. a TensorRT engine's
    #: optimisation-profile maximum); None: only the manifest's ``io.max_batch`` /
    #: ``target.max_batch`` apply. The scorer uses the smallest of them.
    max_batch: int | None = None

    @abc.abstractmethod
    def run(self, *inputs: np.ndarray) -> np.ndarray:
        """Raw network output for one batch (one array per network input, manifest order); see the
        module docstring for the contract."""

    #: How many ``run`` calls from different threads execute at the same time (1: they queue).
    parallel_calls: int = 1

    def throughput(self) -> Backend | None:
        """The same network set up for lists, or None (the default) when the backend has no such variant.

        The variant runs ``parallel_calls`` concurrent ``run`` calls at once (e.g. OpenVINO: one
        stream of one thread per core, instead of one stream whose threads split every layer, which
        wait for each other at every layer of a small network), with exactly ``run``'s outputs. The
        scorer sends it one image per call from ``parallel_calls`` threads when a call scores more
        than one image; a single image keeps the latency set-up. Made on first use, then kept.
        """
        return None

    def describe(self) -> dict[str, Any]:
        """Human-readable facts for logs and ``Scorer.info`` (device, providers, threads...)."""
        return {"backend": self.name}

    def close(self) -> None:  # noqa: B027 - optional hook, most backends free on garbage collection
        """Release the library's resources early (optional)."""


#: The inputs of a two-input bundle, in the runtime's terms: the preprocessed RGB crops and the
#: depth crops under them (DGIQA, see :mod:`edge_iqa.models.depth`). Other multi-input networks are
#: refused: the runtime would not know what to feed them.
IMAGE_INPUT, DEPTH_INPUT = "image", "depth"


def input_records(manifest: Manifest) -> list[dict[str, Any]]:
    """The network inputs declared in the manifest's ``io``, in manifest order: the single image
    input (any name), or ``image`` and ``depth`` with the same shape."""
    inputs = manifest.io.get("inputs") if isinstance(manifest.io, Mapping) else None
    if not isinstance(inputs, list) or not 1 <= len(inputs) <= 2 or not all(isinstance(i, Mapping) for i in inputs):
        raise BundleError("manifest io.inputs must list the network's input: the preprocessed image, or the "
                          f"image and its depth map ('{IMAGE_INPUT}', '{DEPTH_INPUT}'); re-export the bundle")
    records = [_checked_record(record, index) for index, record in enumerate(inputs)]
    if len(records) == 2:
        names = sorted(record["name"] for record in records)
        if names != sorted((IMAGE_INPUT, DEPTH_INPUT)):
            raise BundleError(f"the bundle's network has the inputs {[r['name'] for r in records]}; the runtime "
                              f"serves two-input networks only as '{IMAGE_INPUT}' + '{DEPTH_INPUT}' (RGB and depth "
                              "crops, as DGIQA): re-export the bundle with those input names")
        if records[0]["shape"] != records[1]["shape"]:
            raise BundleError(f"the bundle's image and depth inputs differ in shape ({records[0]['shape']} vs "
                              f"{records[1]['shape']}); depth crops lie under the image crops, re-export the bundle")
    return records


def _checked_record(declared: Mapping[str, Any], index: int) -> dict[str, Any]:
    record = dict(declared)
    shape = record.get("shape")
    if not isinstance(record.get("name"), str) or not isinstance(shape, list) or len(shape) != 4 \
            or not all(isinstance(d, int) for d in shape) or shape[1] != 3:
        raise BundleError(f"manifest io.inputs[{index}] must be {{'name': str, 'shape': [batch, 3, H, W]}}, got "
                          f"{declared!r}; re-export the bundle")
    if record.get("dtype", "float32") != "float32":
        raise BundleError(f"the bundle's input dtype is {record.get('dtype')!r}; the runtime feeds float32 "
                          "preprocessed tensors, re-export with a float32 input")
    return record


def input_record(manifest: Manifest) -> dict[str, Any]:
    """The image input declared in ``manifest["io"]`` (name, shape, dtype); see :func:`input_records`."""
    records = input_records(manifest)
    return next((r for r in records if r["name"] == IMAGE_INPUT), records[0]) if len(records) == 2 else records[0]


def input_names(manifest: Manifest) -> tuple[str, ...]:
    """The network's input names in manifest order: the order :meth:`Backend.run` gets its arrays in."""
    return tuple(record["name"] for record in input_records(manifest))


def output_name(manifest: Manifest) -> str | None:
    """Name of the score output, or None when the manifest does not say (first output is used)."""
    name = manifest.io.get("output")
    return name if isinstance(name, str) else None


def member(bundle_dir: Path, manifest: Manifest, name: str) -> Path:
    """A file of the bundle that the manifest lists (and so was checksum-verified)."""
    if name not in manifest.files:
        raise BundleError(f"{bundle_dir}: the network needs {name}, which the manifest does not list with a "
                          "checksum; re-export the bundle")
    return bundle_dir / name


def check_options(options: Mapping[str, Any], known: set[str], backend: str) -> None:
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(f"unknown backend_options {unknown} for the {backend} backend; known: {sorted(known)}")


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def list_streams_option(options: Mapping[str, Any], default: int) -> int:
    """``backend_options["list_streams"]``: how many images of a list run side by side (see
    :meth:`Backend.throughput`); ``default`` when not given."""
    streams = options.get("list_streams", default)
    if not isinstance(streams, int) or isinstance(streams, bool) or streams < 1:
        raise ValueError(f"list_streams must be a positive integer, got {streams!r}")
    return streams
