"""Loading a bundle and scoring images with it: numpy + Pillow + one backend, never torch.

    image -> load_image -> PreprocessSpec.apply (num_crops rows) -> backend, max_batch rows at a
    time -> mean over each image's crops (float64) -> raw * scale + offset

The decoder and the spec are the ones training and :class:`edge_iqa.predict.TorchScorer` use, so
a bundle and its PyTorch model see the same input tensors.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from edge_iqa.data.imageio import ImageSource, load_image
from edge_iqa.data.preprocess import PreprocessSpec
from edge_iqa.errors import ArrayInputError, BundleError
from edge_iqa.runtime.backends import Backend, check_runtime, load_backend
from edge_iqa.runtime.backends.base import input_record
from edge_iqa.runtime.bundle import read_manifest, verify_files

#: Rows per backend call when the bundle does not say (``io.max_batch``) and the network's batch
#: dimension is dynamic. Small on purpose: a camera has little memory and few cores.
DEFAULT_MAX_BATCH = 8
#: Largest per-call input buffer (max_batch x 3 x H x W float32) a bundle may ask for.
MAX_BUFFER_BYTES = 2 << 30
#: More intra-op threads than this is a mistake (and makes the backends fail to allocate).
MAX_THREADS = 1024

_SINGLE_SOURCES = (str, os.PathLike, bytes, bytearray, memoryview, Image.Image)


class Scorer:
    """Scores images with a verified bundle. Create it with :func:`edge_iqa.runtime.load`.

    Thread-safe: several threads may call :meth:`score` / :meth:`score_tensor` on one Scorer at
    the same time and get exactly what one thread would get for the same call. Each call keeps its
    own buffers; the backend is shared (see :mod:`edge_iqa.runtime.backends.base`).
    """

    def __init__(self, backend: Backend, manifest: Mapping[str, Any], bundle_dir: Path | None = None) -> None:
        self._backend = backend
        self._manifest = copy.deepcopy(dict(manifest))
        self.bundle_dir = bundle_dir
        self._spec, self.fixed_batch, self.max_batch, self.scale, self.offset = _plan(self._manifest, backend)

    # --- what the bundle is ------------------------------------------------------------------------
    @property
    def manifest(self) -> dict[str, Any]:
        """A copy of the bundle's manifest (editing it changes nothing)."""
        return copy.deepcopy(self._manifest)

    @property
    def spec(self) -> PreprocessSpec:
        """The preprocessing the network was trained and exported with."""
        return self._spec

    @property
    def backend(self) -> Backend:
        return self._backend

    @property
    def info(self) -> dict[str, Any]:
        model = self._manifest.get("model", {})
        return {"model": model.get("name") if isinstance(model, Mapping) else None,
                "runtime": self._manifest["runtime"], "precision": self._manifest["precision"],
                "input_size": list(self._spec.input_size), "num_crops": self._spec.num_crops,
                "max_batch": self.max_batch, "fixed_batch": self.fixed_batch, **self._backend.describe()}

    def __repr__(self) -> str:
        info = self.info
        return (f"Scorer(model={info['model']!r}, runtime={info['runtime']!r}, precision={info['precision']!r}, "
                f"bundle={str(self.bundle_dir)!r})")

    # --- scoring ----------------------------------------------------------------------------------
    def preprocess(self, image: ImageSource) -> np.ndarray:
        """One image -> its ``(num_crops, 3, H, W)`` float32 network input."""
        return self._spec.apply(load_image(image))

    def score(self, images: ImageSource | Iterable[ImageSource]) -> np.ndarray:
        """Quality scores (float64, the model's MOS scale) of one image or a sequence of images.

        An image is a path, encoded bytes, a PIL image or an HxWx3 uint8 RGB array; an
        ``(N, H, W, 3)`` uint8 array is N images. Images are decoded and preprocessed one at a
        time and fed to the network ``max_batch`` rows at a time, so memory stays bounded for long
        lists. Decoding errors propagate as :class:`edge_iqa.errors.ImageError` subclasses.
        """
        if isinstance(images, _SINGLE_SOURCES) or (isinstance(images, np.ndarray) and images.ndim != 4):
            images = [images]
        elif isinstance(images, Mapping) or not isinstance(images, Iterable):
            raise ArrayInputError(f"cannot score an object of type {type(images).__name__}; pass an image (file "
                                  "path, encoded bytes, PIL image or HxWx3 uint8 array) or a list of images")
        return self._score_rows(self.preprocess(image) for image in images)

    def score_one(self, image: ImageSource) -> float:
        """The score of a single image, as a Python float."""
        return float(self.score([image])[0])

    def score_tensor(self, batch: np.ndarray) -> np.ndarray:
        """Scores of already-preprocessed input: ``(N * num_crops, 3, H, W)`` float -> ``(N,)`` float64.

        Rows ``i * num_crops ... (i + 1) * num_crops - 1`` are the crops of image ``i`` (the order
        :meth:`PreprocessSpec.apply` produces) and are averaged.
        """
        batch = np.asarray(batch)
        h, w = self._spec.input_size
        crops = self._spec.num_crops
        if batch.ndim != 4 or batch.shape[1:] != (3, h, w) or batch.shape[0] == 0 or batch.shape[0] % crops:
            raise ArrayInputError(f"score_tensor expects (N * {crops}, 3, {h}, {w}) preprocessed rows, got "
                                  f"{batch.shape}; use score() for images")
        if not np.issubdtype(batch.dtype, np.floating):
            raise ArrayInputError(f"score_tensor expects float32 preprocessed rows, got {batch.dtype}; "
                                  "use score() for uint8 images")
        rows = np.ascontiguousarray(batch, dtype=np.float32)
        if not np.isfinite(rows).all():
            raise ArrayInputError("score_tensor got NaN or infinite values (or floats beyond float32); "
                                  "preprocess finite images with Scorer.preprocess() or use score()")
        return self._score_rows(rows[i : i + crops] for i in range(0, len(rows), crops))

    def _score_rows(self, per_image: Iterable[np.ndarray]) -> np.ndarray:
        raw = np.concatenate(list(self._run_chunks(per_image)) or [np.empty(0)])
        crops = self._spec.num_crops
        per_image_raw = raw.reshape(-1, crops).mean(axis=1)
        return per_image_raw * self.scale + self.offset

    def _run_chunks(self, per_image: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        """Pack the images' rows into ``max_batch``-row chunks (crops may straddle two chunks)."""
        h, w = self._spec.input_size
        buffer = np.zeros((self.max_batch, 3, h, w), dtype=np.float32)  # per call: thread-safe
        fill = 0
        for rows in per_image:
            start = 0
            while start < len(rows):
                take = min(len(rows) - start, self.max_batch - fill)
                buffer[fill : fill + take] = rows[start : start + take]
                fill, start = fill + take, start + take
                if fill == self.max_batch:
                    yield self._run(buffer, fill)
                    fill = 0
        if fill:
            yield self._run(buffer, fill)

    def _run(self, buffer: np.ndarray, rows: int) -> np.ndarray:
        if self.fixed_batch is not None:
            buffer[rows:] = 0.0  # a static-batch network always gets fixed_batch rows; padding is dropped
            batch = buffer
        else:
            batch = buffer[:rows]
        out = np.asarray(self._backend.run(batch), dtype=np.float64)
        if out.size != len(batch):
            raise BundleError(f"the network returned shape {out.shape} for a batch of {len(batch)}; a bundle's "
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


def _target(manifest: Mapping[str, Any]) -> Mapping[str, Any]:
    """The target profile recorded in the manifest (informational; {} when absent)."""
    target = manifest.get("target")
    return target if isinstance(target, Mapping) else {}


def _plan(manifest: Mapping[str, Any], backend: Backend | None = None
          ) -> tuple[PreprocessSpec, int | None, int, float, float]:
    """Check the manifest's preprocessing, input shape, batch and output transform (BundleError)."""
    try:
        if not isinstance(manifest["preprocess"], Mapping):
            raise TypeError(f"expected a JSON object, got {type(manifest['preprocess']).__name__}")
        spec = PreprocessSpec.from_dict(manifest["preprocess"])
    except (ValueError, TypeError, KeyError, OverflowError) as exc:
        raise BundleError(f"the bundle's preprocessing spec is invalid ({exc}); re-export the bundle or "
                          "upgrade edge-iqa") from exc
    _dry_run(spec)
    shape = input_record(manifest)["shape"]
    if any(0 < d != s for d, s in zip(shape[2:], spec.input_size, strict=True)):
        raise BundleError(f"the network's input is {shape[2]}x{shape[3]} but the preprocessing produces "
                          f"{spec.input_size[0]}x{spec.input_size[1]}; the bundle is inconsistent, re-export it")
    fixed = shape[0] if shape[0] > 0 else None
    declared = manifest["io"].get("max_batch") or _target(manifest).get("max_batch")
    if declared is not None and (not isinstance(declared, int) or isinstance(declared, bool) or declared < 1):
        raise BundleError(f"the bundle's max_batch {declared!r} is not a positive integer; re-export it")
    limits = [fixed, declared, getattr(backend, "max_batch", None)]
    max_batch = fixed or min([d for d in limits if d] or [DEFAULT_MAX_BATCH])
    buffer_bytes = max_batch * 3 * spec.input_size[0] * spec.input_size[1] * 4
    if buffer_bytes > MAX_BUFFER_BYTES:
        # A hostile or mistaken manifest must not make the runtime allocate terabytes.
        raise BundleError(f"the bundle needs a {buffer_bytes / 2**30:.1f} GiB input buffer ({max_batch} rows of 3x"
                          f"{spec.input_size[0]}x{spec.input_size[1]} float32), above the runtime's "
                          f"{MAX_BUFFER_BYTES / 2**30:.0f} GiB limit; re-export with a smaller batch or input size")
    transform = manifest["output_transform"]
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


def load(bundle_dir: str | os.PathLike, *, threads: int | None = None,
         backend_options: Mapping[str, Any] | None = None) -> Scorer:
    """Open a bundle for scoring.

    Before anything runs, the manifest is parsed and checked (schema version, required keys,
    runtime, preprocessing, input shape) and every file's size and sha256 are verified; then only
    the backend the bundle names is imported and the network is loaded.

    Args:
        bundle_dir: the folder ``edge-iqa export`` wrote.
        threads: intra-op threads for the backend. None: the bundle's target profile ``threads``
            when it is positive, else the library's default (every physical core).
        backend_options: backend-specific settings (see the backend modules' docstrings).

    Raises:
        BundleError: missing/modified/extra-path files, newer schema, unknown runtime, bad manifest.
        BackendUnavailableError: the runtime library the bundle needs is not installed.
    """
    if threads is not None and (not isinstance(threads, int) or isinstance(threads, bool)
                                or not 1 <= threads <= MAX_THREADS):
        raise ValueError(f"threads must be an integer in 1..{MAX_THREADS} or None, got {threads!r}")
    bundle_dir = Path(bundle_dir)
    manifest = read_manifest(bundle_dir)
    check_runtime(manifest["runtime"])
    verify_files(bundle_dir, manifest)
    _plan(manifest)  # refuse an inconsistent manifest before paying for the backend
    if threads is None:
        target_threads = _target(manifest).get("threads")
        if isinstance(target_threads, int) and not isinstance(target_threads, bool) and target_threads > MAX_THREADS:
            raise BundleError(f"the bundle's target asks for {target_threads} threads (at most {MAX_THREADS}); "
                              "pass threads=N to load() or re-export with a sane target profile")
        threads = target_threads if isinstance(target_threads, int) and target_threads > 0 else None
    backend = load_backend(manifest["runtime"], bundle_dir, manifest, threads=threads,
                           options=backend_options or {})
    return Scorer(backend, manifest, bundle_dir)
