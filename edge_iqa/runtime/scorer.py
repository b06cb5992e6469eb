"""Loading a bundle and scoring images with it: numpy + Pillow + one backend, never torch.

    image -> load_image -> PreprocessSpec: resize, crops -> the network's input rows (num_crops per
    image: uint8 pixels, or float32 normalised rows) -> backend, max_batch rows at a time -> mean
    over each image's crops (float64) -> raw * scale + offset

What a row is comes from the manifest (:class:`~edge_iqa.runtime.backends.base.InputRecord`): a
schema-2 bundle's image input takes the crop's uint8 pixels ``(H, W, 3)`` and its network scales
and normalises them; a version-1 bundle (and the torch backend) takes float32 rows ``(3, H, W)``
normalised here (:meth:`PreprocessSpec.apply`).

Over a list, the next images are decoded and preprocessed in ``prefetch`` worker threads while
the network runs (:mod:`edge_iqa.runtime.prefetch`); that changes when an image's rows are made,
never what they are or which batch they go in, so a list scores exactly as its images one by one
(the backends' outputs do not depend on the batch a row travels in: tested on real bundles).
The input buffers (``max_batch`` rows per network input) are kept between calls in a pool, one set
per concurrent call, instead of being allocated and zeroed on every call.

The decoder and the spec are the ones training and :class:`edge_iqa.predict.TorchScorer` use, so
a bundle and its PyTorch model see the same input tensors.

A two-input bundle (``image`` + ``depth``, DGIQA) also needs each image's depth: a
:class:`~edge_iqa.data.depth.DepthSource` given to :func:`load` (used for every image) or depth
maps given to :meth:`Scorer.score`. :func:`~edge_iqa.data.depth.dgiqa_inputs` turns the image and
its depth into two row stacks, depth crop i exactly under image crop i, which travel through the
same batching and crop averaging side by side.
"""

from __future__ import annotations

import itertools
import math
import os
import queue
from collections.abc import Callable, Iterable, Iterator, Mapping, Sized
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from edge_iqa.data.depth import DepthMapSource, DepthSource, as_depth_source, dgiqa_inputs
from edge_iqa.data.imageio import ImageSource, load_image
from edge_iqa.data.preprocess import PreprocessSpec
from edge_iqa.errors import ArrayInputError, BackendUnavailableError, BundleError, ImageError
from edge_iqa.runtime.backends import Backend, check_runtime, import_backend, load_backend
from edge_iqa.runtime.backends.base import (
    DEPTH_INPUT,
    IMAGE_INPUT,
    available_cpus,
    input_names,
    input_record,
    input_records,
)
from edge_iqa.runtime.bundle import read_manifest, verify_files
from edge_iqa.runtime.depth import OnnxDepthEstimator
from edge_iqa.runtime.embedded import embedded_bundle
from edge_iqa.runtime.manifest import MANIFEST_NAME, Manifest
from edge_iqa.runtime.prefetch import read_ahead

#: Rows per backend call when the bundle does not say (``io.max_batch``) and the network's batch
#: dimension is dynamic. Small on purpose: a camera has little memory and few cores.
DEFAULT_MAX_BATCH = 8
#: Largest per-call input buffer (max_batch x 3 x H x W float32) a bundle may ask for.
MAX_BUFFER_BYTES = 2 << 30
#: Files :func:`load` reads as PyTorch checkpoints (the torch backend); anything else must be a bundle.
CHECKPOINT_SUFFIXES = (".safetensors", ".pth", ".pt", ".ckpt")
#: More intra-op threads than this is a mistake (and makes the backends fail to allocate).
MAX_THREADS = 1024

_SINGLE_SOURCES = (str, os.PathLike, bytes, bytearray, memoryview, Image.Image)
#: What ``depth=`` may be: one source for every image, one map, or one entry per image.
DepthArgument = DepthSource | DepthMapSource | Iterable[DepthSource | DepthMapSource]

_HOW_TO_PASS_DEPTH = ("pass depth maps with score(images, depth=[map, ...]) (paths, PIL images or (H, W) "
                      "arrays, one per image), or a depth source for every image with "
                      "load(bundle, depth=OnnxDepthEstimator('depth.onnx')) or load(bundle, depth_model="
                      "'depth.onnx'); on the command line: --depth MAP per image or --depth-model MODEL.onnx. "
                      "edge-iqa ships no depth estimator weights")


class Scorer:
    """Scores images with a verified bundle. Create it with :func:`edge_iqa.runtime.load`.

    Thread-safe: several threads may call :meth:`score` / :meth:`score_tensor` on one Scorer at
    the same time and get exactly what one thread would get for the same call. Each call borrows
    its own input buffers from a pool; the backend (and a depth source given to :func:`load`) is
    shared (see :mod:`edge_iqa.runtime.backends.base`).

    ``prefetch``: worker threads that decode and preprocess the next images of a list while the
    network runs (0: in the calling thread, one image after the other). Two-input (depth) bundles
    always prepare in the calling thread: their depth source is itself a network using the threads.
    """

    def __init__(self, backend: Backend, manifest: Manifest, bundle_dir: Path | None = None,
                 depth: DepthSource | DepthMapSource | None = None, prefetch: int = 0) -> None:
        self._backend = backend
        self._manifest = manifest
        self.bundle_dir = bundle_dir
        self._spec, self.fixed_batch, self.max_batch, self.scale, self.offset = _plan(self._manifest, backend)
        self._records = input_records(self._manifest)
        self._inputs = tuple(record.name for record in self._records)
        self._image_record = input_record(self._manifest)
        self.prefetch = _checked_count("prefetch", prefetch, 0)
        # Idle input buffer sets (one array per network input), reused by the next call.
        self._idle_buffers: queue.SimpleQueue[list[np.ndarray]] = queue.SimpleQueue()
        if depth is not None and not self.needs_depth:
            raise BundleError(_no_depth_input(self._inputs, "load(..., depth=...) / --depth-model"))
        #: The depth source used for every image a :meth:`score` call gives no depth for (two-input bundles).
        self.depth: DepthSource | None = as_depth_source(depth) if depth is not None else None

    # --- what the bundle is ------------------------------------------------------------------------
    @property
    def manifest(self) -> Manifest:
        """The bundle's manifest (immutable: ``manifest[key]`` gives a copy)."""
        return self._manifest

    @property
    def spec(self) -> PreprocessSpec:
        """The preprocessing the network was trained and exported with."""
        return self._spec

    @property
    def backend(self) -> Backend:
        return self._backend

    @property
    def inputs(self) -> tuple[str, ...]:
        """The network's input names, manifest order (``("image",)``, or ``image`` and ``depth``)."""
        return self._inputs

    @property
    def takes_pixels(self) -> bool:
        """True when the network's image input is the crops' uint8 pixels (it normalises them itself,
        manifest schema 2), False for float32 normalised rows."""
        return self._image_record.pixels

    @property
    def needs_depth(self) -> bool:
        """True for an ``image`` + ``depth`` bundle (DGIQA): every image needs a depth map or source."""
        return DEPTH_INPUT in self._inputs

    @property
    def info(self) -> dict[str, Any]:
        return {"model": self._manifest.model_name,
                "runtime": self._manifest.runtime, "precision": self._manifest.precision,
                "input_size": list(self._spec.input_size), "num_crops": self._spec.num_crops,
                "inputs": list(self._inputs), "input_dtype": self._image_record.dtype,
                "depth_source": repr(self.depth) if self.depth is not None else None,
                "max_batch": self.max_batch, "fixed_batch": self.fixed_batch, "prefetch": self.prefetch,
                **self._backend.describe()}

    def __repr__(self) -> str:
        info = self.info
        return (f"Scorer(model={info['model']!r}, runtime={info['runtime']!r}, precision={info['precision']!r}, "
                f"bundle={str(self.bundle_dir)!r})")

    # --- scoring ----------------------------------------------------------------------------------
    def preprocess(self, image: ImageSource) -> np.ndarray:
        """One image -> its network input rows (the image input only; see :meth:`preprocess_inputs`
        for a two-input bundle): ``(num_crops, H, W, 3)`` uint8 pixels when the bundle's network
        takes pixels (:attr:`takes_pixels`), else ``(num_crops, 3, H, W)`` float32 rows."""
        decoded = load_image(image)
        return self._spec.pixels(decoded) if self.takes_pixels else self._spec.apply(decoded)

    def preprocess_inputs(self, image: ImageSource, depth: DepthSource | DepthMapSource | None = None
                          ) -> dict[str, np.ndarray]:
        """One image (and its depth, for a two-input bundle) -> ``{input name: (num_crops, 3, H, W)}``,
        the rows :meth:`score_tensor` takes; depth crop i lies exactly under image crop i."""
        ((_, source),) = _with_depth([image], *self._depth_entries(depth, single=True))
        return dict(zip(self._inputs, self._prepare(image, source), strict=True))

    def score(self, images: ImageSource | Iterable[ImageSource], depth: DepthArgument | None = None) -> np.ndarray:
        """Quality scores (float64, the model's MOS scale) of one image or a sequence of images.

        An image is a path, encoded bytes, a PIL image or an HxWx3 uint8 RGB array; an
        ``(N, H, W, 3)`` uint8 array is N images. The next images are decoded and preprocessed in
        ``prefetch`` threads while the network runs (at most a batch ahead, so memory stays bounded
        for long lists); several images run side by side on the backend's list set-up, if it has
        one, else ``max_batch`` rows at a time. Scores are the one-by-one scores either way.
        Decoding errors propagate as :class:`edge_iqa.errors.ImageError` subclasses.

        ``depth`` (two-input bundles only; it overrides the source given to :func:`load`): for one
        image, its depth map (path, encoded bytes, PIL image, (H, W) array) or a
        :class:`~edge_iqa.data.depth.DepthSource`; for a sequence, a list or tuple with one such
        entry per image, in order, or one DepthSource for all. A map of another size is resized to
        its image (same aspect ratio required). Wrong counts raise :class:`ArrayInputError`.
        """
        single = isinstance(images, _SINGLE_SOURCES) or (isinstance(images, np.ndarray) and images.ndim != 4)
        if single:
            images = [images]
        elif isinstance(images, Mapping) or not isinstance(images, Iterable):
            raise ArrayInputError(f"cannot score an object of type {type(images).__name__}; pass an image (file "
                                  "path, encoded bytes, PIL image or HxWx3 uint8 array) or a list of images")
        entries, finite = self._depth_entries(depth, single)
        if finite and not single and isinstance(images, Sized) and len(depth) != len(images):  # before any work
            raise ArrayInputError(f"got {len(depth)} depth maps for {len(images)} images; pass exactly one depth "
                                  "map per image, in the same order")
        images = iter(images)
        head = list(itertools.islice(images, 2))
        pairs = _with_depth(itertools.chain(head, images), entries, finite)
        return self._score_pairs(pairs, len(head) > 1, self._prepare_pair)

    def score_each(self, images: Iterable[ImageSource]) -> tuple[np.ndarray, list[ImageError | None]]:
        """Scores of a list of images, where an image that cannot be read does not stop the call:
        ``(scores, errors)``, ``errors[i]`` the :class:`~edge_iqa.errors.ImageError` of image ``i``
        (its score NaN) or None.

        Each image is decoded and preprocessed on its own before the network sees its rows, so a
        bad file costs nothing beyond its own decode, and the good images take exactly the path
        :meth:`score` gives them (the same rows, batches and network calls): their scores are those
        of ``score(good_images)``, bit for bit. Any other error (a broken bundle, a two-input bundle
        without a depth source) raises, as in :meth:`score`.
        """
        single = isinstance(images, _SINGLE_SOURCES) or (isinstance(images, np.ndarray) and images.ndim != 4)
        images = [images] if single else list(images)
        entries, finite = self._depth_entries(None, single=False)
        errors: list[ImageError | None] = []

        def prepare(pair: tuple[ImageSource, DepthSource | None]) -> tuple[np.ndarray, ...] | ImageError:
            try:
                return self._prepare(*pair)
            except ImageError as exc:
                return exc

        def readable(prepared: Iterable[tuple[np.ndarray, ...] | ImageError]) -> Iterator[tuple[np.ndarray, ...]]:
            for item in prepared:  # in the images' order, on the calling thread
                errors.append(item if isinstance(item, ImageError) else None)
                if not isinstance(item, ImageError):
                    yield item

        good = self._score_pairs(_with_depth(images, entries, finite), len(images) > 1, prepare, readable)
        scores = np.full(len(images), np.nan)
        scores[[index for index, error in enumerate(errors) if error is None]] = good
        return scores, errors

    def _score_pairs(self, pairs: Iterable[tuple[ImageSource, DepthSource | None]], many: bool,
                     prepare: Callable[[Any], Any], keep: Callable[[Iterator[Any]], Iterator[Any]] = iter
                     ) -> np.ndarray:
        """(image, depth source) pairs -> scores: ``prepare`` each (read ahead in worker threads),
        ``keep`` the rows that go to the network, then the network (OpenVINO streams for a list)."""
        workers = 0 if self.needs_depth else self.prefetch
        # Enough images ahead to fill the next batch while the network runs on this one.
        lookahead = -(-self.max_batch // self._spec.num_crops) + workers
        prepared = keep(read_ahead(prepare, pairs, workers=workers, lookahead=lookahead))
        streams = self._backend.throughput() if many else None
        if streams is None:
            return self._score_rows(prepared)
        # One image per call, parallel_calls calls at once, each on its own stream (same outputs).
        calls = streams.parallel_calls
        per_image = read_ahead(lambda stacks: self._network_outputs([stacks], streams), prepared, workers=calls,
                               lookahead=calls)
        return self._transformed(np.concatenate(list(per_image) or [np.empty(0)]))

    def score_one(self, image: ImageSource, depth: DepthSource | DepthMapSource | None = None) -> float:
        """The score of a single image (and its depth, for a two-input bundle), as a Python float."""
        return float(self.score([image], None if depth is None else [depth])[0])

    def score_tensor(self, batch: np.ndarray, depth: np.ndarray | None = None, *, raw: bool = False) -> np.ndarray:
        """Scores of already-preprocessed input -> ``(N,)`` float64. ``batch``: the crops' uint8 pixels
        ``(N * num_crops, H, W, 3)`` (:meth:`PreprocessSpec.pixels`; any single-input bundle: a
        float-input network gets them normalised by the spec), or ``(N * num_crops, 3, H, W)`` float
        rows (:meth:`PreprocessSpec.apply`; float-input networks only).

        Rows ``i * num_crops ... (i + 1) * num_crops - 1`` are the crops of image ``i`` (the order
        :meth:`PreprocessSpec.apply` produces) and are averaged. A two-input bundle also needs
        ``depth``: the depth rows of the same shape, row for row under ``batch`` (see
        :meth:`preprocess_inputs`). ``raw``: the crop-averaged network output before the output
        transform (what export's parity gate compares).
        """
        if depth is None and self.needs_depth:
            raise ArrayInputError("this bundle's network also takes depth crops: pass score_tensor(batch, "
                                  "depth=rows) with rows from Scorer.preprocess_inputs(), or use score(); "
                                  + _HOW_TO_PASS_DEPTH)
        if depth is not None and not self.needs_depth:
            raise ArrayInputError(_no_depth_input(self._inputs, "score_tensor(..., depth=...)"))
        given = {IMAGE_INPUT: batch, DEPTH_INPUT: depth} if self.needs_depth else {self._inputs[0]: batch}
        arrays = {name: self._checked_rows(value, name) for name, value in given.items()}
        if self.needs_depth and arrays[IMAGE_INPUT].shape != arrays[DEPTH_INPUT].shape:
            raise ArrayInputError(f"score_tensor got {arrays[IMAGE_INPUT].shape} image rows but "
                                  f"{arrays[DEPTH_INPUT].shape} depth rows; pass one depth row under each image row")
        rows = [arrays[name] for name in self._inputs]
        crops = self._spec.num_crops
        return self._score_rows((tuple(r[i : i + crops] for r in rows) for i in range(0, len(rows[0]), crops)),
                                raw=raw)

    def _checked_rows(self, batch: np.ndarray, name: str) -> np.ndarray:
        batch = np.asarray(batch)
        h, w = self._spec.input_size
        crops = self._spec.num_crops
        pixels_allowed = name == IMAGE_INPUT or not self.needs_depth
        if pixels_allowed and batch.dtype == np.uint8 and batch.shape[1:] == (h, w, 3) \
                and batch.shape[0] and not batch.shape[0] % crops:
            pixels = np.ascontiguousarray(batch)
            return pixels if self.takes_pixels else self._spec.normalize_pixels(pixels)
        pixel_form = f"(N * {crops}, {h}, {w}, 3) uint8 pixels" if pixels_allowed else ""
        if self.takes_pixels:
            raise ArrayInputError(f"this bundle's network takes the crops' uint8 pixels: score_tensor expects "
                                  f"{pixel_form} ({name!r}), got {batch.shape} {batch.dtype}; make them with "
                                  "Scorer.preprocess(image) or PreprocessSpec.pixels(), or use score()")
        forms = " or ".join(f for f in (pixel_form, f"(N * {crops}, 3, {h}, {w}) float32 rows") if f)
        if batch.ndim != 4 or batch.shape[1:] != (3, h, w) or batch.shape[0] == 0 or batch.shape[0] % crops:
            raise ArrayInputError(f"score_tensor expects {forms} ({name!r}), got {batch.shape}; use score() for images")
        if not np.issubdtype(batch.dtype, np.floating):
            raise ArrayInputError(f"score_tensor expects {forms} ({name!r}), got {batch.dtype}; use score() for "
                                  "decoded images")
        rows = np.ascontiguousarray(batch, dtype=np.float32)
        if not np.isfinite(rows).all():
            raise ArrayInputError(f"score_tensor got NaN or infinite values in {name!r} (or floats beyond float32); "
                                  "preprocess finite images with Scorer.preprocess_inputs() or use score()")
        return rows

    # --- depth ---------------------------------------------------------------------------------------
    def _depth_entries(self, depth: DepthArgument | None, single: bool) -> tuple[Iterator[Any], bool]:
        """Per image, in order, its depth entry (a DepthSource or a map; None for a single-input
        bundle), and whether the entries are a finite list that must match the images' count."""
        if not self.needs_depth:
            if depth is not None:
                raise ArrayInputError(_no_depth_input(self._inputs, "depth="))
            return itertools.repeat(None), False
        if depth is None:
            if self.depth is None:
                raise ArrayInputError(f"this bundle's network takes each image's depth map too (inputs "
                                      f"{list(self._inputs)}) and none was given: " + _HOW_TO_PASS_DEPTH)
            return itertools.repeat(self.depth), False
        if callable(depth) and not isinstance(depth, (np.ndarray, Image.Image)):
            return itertools.repeat(depth), False  # one DepthSource for every image
        if single:
            return iter([depth]), True
        if not isinstance(depth, (list, tuple)):
            raise ArrayInputError(f"depth for a sequence of images must be a list or tuple with one depth map per "
                                  f"image, or one DepthSource for all; got {type(depth).__name__}")
        return iter(depth), True

    def _prepare_pair(self, pair: tuple[ImageSource, DepthSource | None]) -> tuple[np.ndarray, ...]:
        return self._prepare(*pair)

    def _prepare(self, image: ImageSource, source: DepthSource | None) -> tuple[np.ndarray, ...]:
        """One image -> its row stacks, one per network input in manifest order."""
        return network_inputs(load_image(image), self._spec, self._inputs, source, pixels=self.takes_pixels)

    # --- batching --------------------------------------------------------------------------------------
    def _score_rows(self, per_image: Iterable[tuple[np.ndarray, ...]], raw: bool = False) -> np.ndarray:
        """The one path from preprocessed rows to scores (every backend, torch included)."""
        return self._transformed(self._network_outputs(per_image, self._backend), raw)

    def _transformed(self, outputs: np.ndarray, raw: bool = False) -> np.ndarray:
        """Per-crop network outputs, in order -> per-image scores (crop mean, output transform)."""
        per_image_raw = outputs.reshape(-1, self._spec.num_crops).mean(axis=1)
        return per_image_raw if raw else per_image_raw * self.scale + self.offset

    def _network_outputs(self, per_image: Iterable[tuple[np.ndarray, ...]], backend: Backend) -> np.ndarray:
        return np.concatenate(list(self._run_chunks(per_image, backend)) or [np.empty(0)])

    def _run_chunks(self, per_image: Iterable[tuple[np.ndarray, ...]], backend: Backend) -> Iterator[np.ndarray]:
        """Pack the images' rows into ``max_batch``-row chunks (crops may straddle two chunks); the
        inputs of a two-input network move in lockstep, so row i of each buffer is the same crop."""
        buffers = self._borrow_buffers()  # this call's alone until it is given back: thread-safe
        try:
            fill = 0
            for stacks in per_image:
                count, start = len(stacks[0]), 0
                while start < count:
                    take = min(count - start, self.max_batch - fill)
                    for buffer, rows in zip(buffers, stacks, strict=True):
                        buffer[fill : fill + take] = rows[start : start + take]
                    fill, start = fill + take, start + take
                    if fill == self.max_batch:
                        yield self._run(backend, buffers, fill)
                        fill = 0
            if fill:
                yield self._run(backend, buffers, fill)
        finally:
            self._idle_buffers.put(buffers)

    def _borrow_buffers(self) -> list[np.ndarray]:
        """An idle set of input buffers, or a new one when every set is in use. Not zeroed: only the
        rows a call fills reach the network (a static batch's padding rows are zeroed in _run)."""
        try:
            return self._idle_buffers.get_nowait()
        except queue.Empty:
            size = self._spec.input_size
            return [np.empty((self.max_batch, *record.row_shape(size)), dtype=record.numpy_dtype)
                    for record in self._records]

    def _run(self, backend: Backend, buffers: list[np.ndarray], rows: int) -> np.ndarray:
        if self.fixed_batch is not None:
            for buffer in buffers:
                buffer[rows:] = 0  # a static-batch network always gets fixed_batch rows; padding is dropped
            batches = buffers
        else:
            batches = [buffer[:rows] for buffer in buffers]
        out = np.asarray(backend.run(*batches), dtype=np.float64)
        if out.size != len(batches[0]):
            raise BundleError(f"the network returned shape {out.shape} for a batch of {len(batches[0])}; a bundle's "
                              "output must be one score per row (batch,), re-export it")
        out = out.reshape(-1)[:rows]
        if not np.isfinite(out).all():
            # Finite inputs in, NaN/inf out: an overflowing (e.g. FP16) or broken network, never a score.
            raise BundleError("the network returned a non-finite score for a valid image; the bundle is "
                              "numerically broken (FP16 overflow?): re-export it at fp32 or report the model")
        return out

    # --- lifetime -------------------------------------------------------------------------------------
    def close(self) -> None:
        self._backend.close()

    def __enter__(self) -> Scorer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def network_inputs(decoded: np.ndarray, spec: PreprocessSpec, inputs: tuple[str, ...],
                   depth: DepthSource | None = None, *, pixels: bool = False) -> tuple[np.ndarray, ...]:
    """A decoded HxWx3 uint8 RGB image -> its row stacks, one per network input in ``inputs``
    order: the image through ``spec``, as ``(num_crops, H, W, 3)`` uint8 pixels with ``pixels``
    (single-input networks), else ``(num_crops, 3, H, W)`` float32 rows; for an ``image`` + ``depth``
    network also its depth, from ``depth``, through the runtime's depth path (8-bit map, the same
    resize and crops). The one preparation of network input: :meth:`Scorer.score` and the export's
    calibration and gates (:func:`edge_iqa.export.calibration.prepare_images`) call it."""
    if DEPTH_INPUT not in inputs:
        return (spec.pixels(decoded) if pixels else spec.apply(decoded),)
    if pixels:
        raise ArrayInputError("an image + depth network takes float32 rows, not uint8 pixels")
    if depth is None:
        raise ArrayInputError(f"the network takes each image's depth map too (inputs {list(inputs)}) and none "
                              "was given: " + _HOW_TO_PASS_DEPTH)
    rgb, depth_rows = dgiqa_inputs(decoded, depth, spec)
    return tuple(rgb if name == IMAGE_INPUT else depth_rows for name in inputs)


def _no_depth_input(inputs: tuple[str, ...], what: str) -> str:
    return (f"this bundle's network has the single input {inputs[0]!r} and takes no depth map; drop {what} "
            "(depth is only for image + depth bundles such as DGIQA)")


def _with_depth(images: Iterable[ImageSource], entries: Iterator[Any], finite: bool
                ) -> Iterator[tuple[ImageSource, DepthSource | None]]:
    """Pair each image with its depth entry (made a DepthSource only when its image comes up, so one
    decoded map at a time); a finite list of entries must match the images one for one."""
    for image in images:
        entry = next(entries, _END)
        if entry is _END:
            raise ArrayInputError("fewer depth maps than images were given; pass exactly one depth map per "
                                  "image, in the same order")
        yield image, (None if entry is None else as_depth_source(entry))
    if finite and next(entries, _END) is not _END:
        raise ArrayInputError("more depth maps than images were given; pass exactly one depth map per image, "
                              "in the same order")


_END = object()


def _plan(manifest: Manifest, backend: Backend | None = None
          ) -> tuple[PreprocessSpec, int | None, int, float, float]:
    """Check the manifest's preprocessing, input shape, batch and output transform (BundleError)."""
    try:
        if not isinstance(manifest.preprocess, Mapping):
            raise TypeError(f"expected a JSON object, got {type(manifest.preprocess).__name__}")
        spec = PreprocessSpec.from_dict(manifest.preprocess)
    except (ValueError, TypeError, KeyError, OverflowError) as exc:
        raise BundleError(f"the bundle's preprocessing spec is invalid ({exc}); re-export the bundle or "
                          "upgrade edge-iqa") from exc
    _dry_run(spec)
    record = input_record(manifest)
    if any(0 < d != s for d, s in zip(record.size, spec.input_size, strict=True)):
        raise BundleError(f"the network's input is {record.size[0]}x{record.size[1]} but the preprocessing produces "
                          f"{spec.input_size[0]}x{spec.input_size[1]}; the bundle is inconsistent, re-export it")
    fixed = record.batch if record.batch > 0 else None
    declared = manifest.io.get("max_batch") or manifest.section("target").get("max_batch")
    if declared is not None and (not isinstance(declared, int) or isinstance(declared, bool) or declared < 1):
        raise BundleError(f"the bundle's max_batch {declared!r} is not a positive integer; re-export it")
    limits = [fixed, declared, getattr(backend, "max_batch", None)]
    max_batch = fixed or min([d for d in limits if d] or [DEFAULT_MAX_BATCH])
    records = input_records(manifest)  # one buffer per network input (image, depth)
    buffer_bytes = sum(max_batch * 3 * spec.input_size[0] * spec.input_size[1] * np.dtype(r.numpy_dtype).itemsize
                       for r in records)
    if buffer_bytes > MAX_BUFFER_BYTES:
        # A hostile or mistaken manifest must not make the runtime allocate terabytes.
        raise BundleError(f"the bundle needs {buffer_bytes / 2**30:.1f} GiB of input buffers ({len(records)} x "
                          f"{max_batch} rows of 3x{spec.input_size[0]}x{spec.input_size[1]} {record.dtype}), above the "
                          f"runtime's {MAX_BUFFER_BYTES / 2**30:.0f} GiB limit; re-export with a smaller batch or "
                          "input size")
    transform = manifest.output_transform
    try:
        scale, offset = float(transform.get("scale", 1.0)), float(transform.get("offset", 0.0))
    except (AttributeError, TypeError, ValueError) as exc:
        raise BundleError(f"the bundle's output_transform {transform!r} must be {{'scale': number, 'offset': "
                          "number}; re-export it") from exc
    if not (math.isfinite(scale) and math.isfinite(offset)):
        raise BundleError(f"the bundle's output_transform {transform!r} is not finite; re-export it")
    return spec, fixed, max_batch, scale, offset


def _dry_run(spec: PreprocessSpec) -> None:
    """Preprocess one small image now, so that a spec with values of the wrong type or range fails
    at load with a BundleError instead of at the first score with a TypeError."""
    try:
        # At least the crop size: multi-crop specs without resize (LoDa, GlintIQA) refuse smaller images.
        # Capped, so that an absurd input_size in a manifest cannot allocate gigabytes here.
        height, width = (min(max(low, int(side)), 4096) for low, side in zip((48, 64), spec.input_size, strict=True))
        rows = spec.apply(np.full((height, width, 3), 128, np.uint8))
        ok = rows.shape == (spec.num_crops, 3, *spec.input_size) and bool(np.isfinite(rows).all())
    except Exception as exc:  # noqa: BLE001 - any failure here is the manifest's
        raise BundleError(f"the bundle's preprocessing spec cannot be applied ({type(exc).__name__}: {exc}); "
                          "re-export the bundle or upgrade edge-iqa") from exc
    if not ok:
        raise BundleError("the bundle's preprocessing spec gives non-finite or misshapen input (e.g. std 0); "
                          "re-export the bundle")


def load(source: str | os.PathLike, *, threads: int | None = None,
         backend_options: Mapping[str, Any] | None = None,
         depth: DepthSource | DepthMapSource | None = None,
         depth_model: str | os.PathLike | None = None,
         model: str | None = None,
         prefetch: int | None = None) -> Scorer:
    """Open a bundle, a checkpoint or a registered model for scoring: the same :class:`Scorer`.

    A bundle: before anything runs, the manifest is parsed and checked (schema version, required
    keys, runtime, preprocessing, input shape) and every file's size and sha256 are verified; then
    only the backend the bundle names is imported and the network is loaded. A checkpoint file
    (``NAME.safetensors`` + ``NAME.json``, or a state dict of ``model``) or a registered model name
    (its embedded weights) runs on the ``torch`` backend, the FP32 reference (needs torch); without
    torch, a default model's name loads its embedded ONNX Runtime FP32 bundle
    (:mod:`edge_iqa.runtime.embedded`), exported from the same weights.

    Args:
        source: the folder ``edge-iqa export`` wrote, a checkpoint file, or a model name.
        threads: intra-op threads for the backend. None: the bundle's target profile ``threads``
            when it is positive, else the library's default (every physical core).
        backend_options: backend-specific settings (see the backend modules' docstrings).
        depth: for an ``image`` + ``depth`` bundle (DGIQA), the depth of every image that a
            :meth:`Scorer.score` call gives no depth for: a
            :class:`~edge_iqa.data.depth.DepthSource` (e.g. ``OnnxDepthEstimator(path)``), or one
            depth map (path, PIL image, array) for a fixed camera whose scene does not move.
        depth_model: shorthand for ``depth=OnnxDepthEstimator(depth_model)`` run on the bundle's
            runtime: OpenVINO for an OpenVINO bundle, else ONNX Runtime (with the bundle's
            ``providers`` for an ONNX Runtime bundle, the CPU for a TensorRT one), with ``threads``.
            edge-iqa ships no depth weights: export your own (e.g. Depth Anything) to ONNX.
        model: the registered model a foreign checkpoint (``.pth``, bare ``.safetensors``) holds.
        prefetch: worker threads that decode and preprocess the next images of a list while the
            network runs. None: ``threads - 1`` (of the resolved thread count, or of the CPUs this
            process may use when that is the library's default), so one thread needs none; 0 turns
            read-ahead off. Scores do not depend on it.

    Raises:
        BundleError: missing/modified/extra-path files, newer schema, unknown runtime, bad manifest;
            depth given for a bundle whose network takes none.
        BackendUnavailableError: the runtime library the bundle (or torch, for a checkpoint) needs is
            not installed.
        CheckpointError: a checkpoint that cannot be read or does not fit its model.
    """
    if threads is not None:
        _checked_count("threads", threads, 1)
    if prefetch is not None:
        _checked_count("prefetch", prefetch, 0)
    if depth is not None and depth_model is not None:
        raise ValueError("pass depth= (a depth source or map) or depth_model= (an ONNX depth network), not both")
    folder, manifest, is_bundle = _open(source, model, backend_options or {})
    check_runtime(manifest.runtime)
    if is_bundle:
        verify_files(folder, manifest)
    _plan(manifest)  # refuse an inconsistent manifest before paying for the backend
    if (depth is not None or depth_model is not None) and DEPTH_INPUT not in input_names(manifest):
        raise BundleError(_no_depth_input(input_names(manifest), "depth= / depth_model= (--depth-model)"))
    if threads is None:
        target_threads = manifest.section("target").get("threads")
        if isinstance(target_threads, int) and not isinstance(target_threads, bool) and target_threads > MAX_THREADS:
            raise BundleError(f"the bundle's target asks for {target_threads} threads (at most {MAX_THREADS}); "
                              "pass threads=N to load() or re-export with a sane target profile")
        threads = target_threads if isinstance(target_threads, int) and target_threads > 0 else None
    if depth_model is not None:
        depth = _depth_estimator(depth_model, manifest.runtime, threads, backend_options or {})
    elif depth is not None:
        depth = as_depth_source(depth)  # a bad map fails here, before the network is loaded
    if prefetch is None:
        prefetch = max(0, (threads or available_cpus()) - 1)
    backend = load_backend(manifest.runtime, folder, manifest, threads=threads, options=backend_options or {})
    return Scorer(backend, manifest, folder if is_bundle else None, depth=depth, prefetch=prefetch)


def _checked_count(name: str, value: object, minimum: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not minimum <= value <= MAX_THREADS:
        raise ValueError(f"{name} must be an integer in {minimum}..{MAX_THREADS} or None, got {value!r}")
    return value


def _open(source: str | os.PathLike, model: str | None, backend_options: Mapping[str, Any]
          ) -> tuple[Path, Manifest, bool]:
    """(folder, manifest, is a bundle): a bundle's folder and manifest (checksums verified by the
    caller), or the torch manifest of a checkpoint file or a registered model name (the torch
    backend, imported only then) and the checkpoint's folder."""
    path = Path(source)
    checkpoint = path.is_file() and path.suffix in CHECKPOINT_SUFFIXES
    if not checkpoint and (path.exists() or model is not None or not _could_be_model_name(source)):
        if model is not None:
            raise ValueError(f"model={model!r} names the architecture of a checkpoint file "
                             f"({', '.join(CHECKPOINT_SUFFIXES)}); {path} is not one")
        return path, read_manifest(path), True
    try:
        torch_backend = import_backend("torch")
    except BackendUnavailableError as exc:
        if checkpoint:
            raise
        embedded = embedded_bundle(str(source))
        if embedded is not None:  # without torch, a default model runs as its embedded ONNX Runtime bundle
            return embedded, read_manifest(embedded), True
        raise BundleError(f"{path}: not a bundle folder (does not exist), and scoring a model by name needs "
                          f"torch ({exc}); pass a bundle folder (`edge-iqa export` writes one)") from exc
    from edge_iqa.models import list_models

    if not checkpoint and str(source) not in list_models():
        return path, read_manifest(path), True  # neither a file nor a model: the bundle error says what to do
    folder, manifest = torch_backend.checkpoint_manifest(
        model if checkpoint else str(source), path if checkpoint else None,
        batch_images=backend_options.get("batch_images", torch_backend.DEFAULT_BATCH_IMAGES))
    return folder, manifest, False


def _could_be_model_name(source: str | os.PathLike) -> bool:
    return isinstance(source, str) and source.replace("_", "").isalnum() and MANIFEST_NAME not in source


def _depth_estimator(path: str | os.PathLike, runtime: str, threads: int | None,
                     backend_options: Mapping[str, Any]) -> OnnxDepthEstimator:
    """The depth network on the bundle's own runtime where it reads ONNX (ORT, OpenVINO), else ORT."""
    if runtime == "openvino":
        return OnnxDepthEstimator(path, threads=threads, runtime="openvino")
    providers = backend_options.get("providers") if runtime == "onnxruntime" else None
    return OnnxDepthEstimator(path, threads=threads, providers=providers)


def describe_source(source: str | os.PathLike) -> tuple[Manifest, Path | None]:
    """What :func:`load` would open for ``source`` (a bundle folder, a checkpoint file, a model
    name), without loading a network: its manifest and, for a bundle, its folder (None for a
    checkpoint or a model name on the torch backend, whose manifest the runtime builds)."""
    folder, manifest, is_bundle = _open(source, None, {})
    return manifest, folder if is_bundle else None
