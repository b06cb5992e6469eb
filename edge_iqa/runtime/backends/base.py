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

- input: one C-contiguous array per network input, in the encoding its ``io.inputs`` record
  declares (:class:`InputRecord`): float32 ``(n, 3, H, W)`` normalised rows, or, for an image input
  of ``dtype`` uint8, the crops' pixels as decoded, ``(n, H, W, 3)`` uint8 (the network normalises);
  positional, in the order of the manifest's ``io.inputs`` (:func:`input_records`): just the image for most
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge_iqa.errors import BundleError
from edge_iqa.runtime.manifest import Manifest


class Backend(abc.ABC):
    """A loaded network that maps ``n`` input rows (see :class:`InputRecord`) to ``n`` raw scores."""

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


#: ``dtype`` of an image input that takes the crops' pixels, ``(n, H, W, 3)`` uint8 (manifest schema 2);
#: the default, ``float32``, is ``(n, 3, H, W)`` rows the runtime normalised.
PIXEL_DTYPE = "uint8"


@dataclass(frozen=True)
class InputRecord:
    """One network input as the manifest declares it: its name, its shape (-1: dynamic batch) and
    its encoding: ``float32`` normalised rows (n, 3, H, W), or ``uint8`` pixels (n, H, W, 3) that
    the network itself scales and normalises per the bundle's preprocessing spec."""

    name: str
    shape: tuple[int, int, int, int]
    dtype: str = "float32"

    @property
    def pixels(self) -> bool:
        return self.dtype == PIXEL_DTYPE

    @property
    def batch(self) -> int:
        return self.shape[0]

    @property
    def size(self) -> tuple[int, int]:
        """(H, W), -1 where dynamic."""
        return (self.shape[1], self.shape[2]) if self.pixels else (self.shape[2], self.shape[3])

    def row_shape(self, size: tuple[int, int]) -> tuple[int, int, int]:
        """One row of this input for crops of ``size`` = (H, W)."""
        return (*size, 3) if self.pixels else (3, *size)

    @property
    def numpy_dtype(self) -> type[np.generic]:
        return np.uint8 if self.pixels else np.float32

    def example_rows(self, rows: int, size: tuple[int, int], seed: int = 0) -> np.ndarray:
        """Seeded random rows of this input (timing and profiling scripts): uniform pixels, or
        standard-normal float rows."""
        rng = np.random.default_rng(seed)
        shape = (rows, *self.row_shape(size))
        if self.pixels:
            return rng.integers(0, 256, shape, dtype=np.uint8)
        return rng.standard_normal(shape, dtype=np.float32)


def input_records(manifest: Manifest) -> list[InputRecord]:
    """The network inputs declared in the manifest's ``io``, in manifest order: the single image
    input (any name, float32 rows or uint8 pixels), or ``image`` and ``depth`` with the same shape
    (float32 rows)."""
    inputs = manifest.io.get("inputs") if isinstance(manifest.io, Mapping) else None
    if not isinstance(inputs, list) or not 1 <= len(inputs) <= 2 or not all(isinstance(i, Mapping) for i in inputs):
        raise BundleError("manifest io.inputs must list the network's input: the preprocessed image, or the "
                          f"image and its depth map ('{IMAGE_INPUT}', '{DEPTH_INPUT}'); re-export the bundle")
    records = [_checked_record(record, index) for index, record in enumerate(inputs)]
    if len(records) == 2:
        names = sorted(record.name for record in records)
        if names != sorted((IMAGE_INPUT, DEPTH_INPUT)):
            raise BundleError(f"the bundle's network has the inputs {[r.name for r in records]}; the runtime "
                              f"serves two-input networks only as '{IMAGE_INPUT}' + '{DEPTH_INPUT}' (RGB and depth "
                              "crops, as DGIQA): re-export the bundle with those input names")
        if any(record.pixels for record in records):
            raise BundleError("the bundle's image + depth network declares uint8 pixel inputs; such networks take "
                              "float32 rows (depth crops lie under the image crops): re-export the bundle")
        if records[0].shape != records[1].shape:
            raise BundleError(f"the bundle's image and depth inputs differ in shape ({list(records[0].shape)} vs "
                              f"{list(records[1].shape)}); depth crops lie under the image crops, re-export the bundle")
    return records


def _checked_record(declared: Mapping[str, Any], index: int) -> InputRecord:
    shape, dtype = declared.get("shape"), declared.get("dtype", "float32")
    if dtype not in ("float32", PIXEL_DTYPE):
        raise BundleError(f"the bundle's input dtype is {dtype!r}; this runtime feeds float32 rows or uint8 "
                          "pixels: re-export the bundle, or upgrade edge-iqa")
    channels = 3 if dtype == PIXEL_DTYPE else 1
    if not isinstance(declared.get("name"), str) or not isinstance(shape, list) or len(shape) != 4 \
            or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape) or shape[channels] != 3:
        layout = "[batch, H, W, 3] (uint8 pixels)" if dtype == PIXEL_DTYPE else "[batch, 3, H, W]"
        raise BundleError(f"manifest io.inputs[{index}] must be {{'name': str, 'shape': {layout}}}, got "
                          f"{declared!r}; re-export the bundle")
    return InputRecord(declared["name"], tuple(shape), dtype)


def input_record(manifest: Manifest) -> InputRecord:
    """The image input declared in ``manifest["io"]``; see :func:`input_records`."""
    records = input_records(manifest)
    return next((r for r in records if r.name == IMAGE_INPUT), records[0]) if len(records) == 2 else records[0]


def input_names(manifest: Manifest) -> tuple[str, ...]:
    """The network's input names in manifest order: the order :meth:`Backend.run` gets its arrays in."""
    return tuple(record.name for record in input_records(manifest))


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
