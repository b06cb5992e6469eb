"""PyTorch backend (``runtime = "torch"``): the FP32 reference, scored on the same
:class:`~edge_iqa.runtime.scorer.Scorer` path as every bundle (decode, spec, batching, crop
averaging, output transform), so a bundle and its PyTorch model differ only in the network.

Imported only when a checkpoint, a model name or an in-memory ``nn.Module`` is scored; a bundle
never imports torch. :func:`load` serves a manifest whose ``model_file`` is a checkpoint (what
:func:`checkpoint_manifest` describes); :func:`module_scorer` wraps a network already in memory
(training's validation, the export reference).

``backend_options``:
    module        an ``nn.Module`` to run instead of building one from the manifest's checkpoint
    batch_images  images per network call for a checkpoint or model name (default 8; times the
                  model's crops per image), recorded as the manifest's ``io.max_batch``
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from edge_iqa.data.preprocess import PreprocessSpec
from edge_iqa.models.checkpoint import IDENTITY_TRANSFORM, ResolvedWeights, resolve_weights
from edge_iqa.runtime.backends.base import Backend, check_options, input_names
from edge_iqa.runtime.manifest import SCHEMA_VERSION, Manifest

OPTIONS = {"module", "batch_images"}
#: Images per network call, as the old TorchScorer batched (times the model's crops per image).
DEFAULT_BATCH_IMAGES = 8
IN_MEMORY = "<in-memory module>"


class TorchBackend(Backend):
    name = "torch"

    def __init__(self, module: nn.Module, inputs: tuple[str, ...], threads: int | None) -> None:
        self.module = module.eval()
        self.input_names = inputs
        self.threads = threads
        # One forward at a time: torch's own intra-op pool already uses the cores, and a module
        # (e.g. one compiled with torch.compile) is not promised to be re-entrant.
        self._lock = threading.Lock()

    def run(self, *inputs: np.ndarray) -> np.ndarray:
        with self._lock, torch.inference_mode():
            out = self.module(*(torch.from_numpy(array) for array in inputs))
        return out.reshape(-1).double().numpy()

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "torch": torch.__version__, "threads": torch.get_num_threads()}


def load(bundle_dir: Path, manifest: Manifest, *, threads: int | None, options: Mapping[str, Any]) -> TorchBackend:
    check_options(options, OPTIONS, "torch")
    if threads is not None:
        torch.set_num_threads(int(threads))
    module = options.get("module")
    if module is None:
        model = manifest.section("model")
        weights = None if manifest.model_file == IN_MEMORY else bundle_dir / manifest.model_file
        module = ResolvedWeights(model["name"], weights, PreprocessSpec.from_dict(manifest.preprocess),
                                 dict(manifest.output_transform), dict(model.get("kwargs", {})), {}).build()
    return TorchBackend(module, input_names(manifest), threads)


def torch_manifest(model_name: str, spec: PreprocessSpec, output_transform: Mapping[str, float] | None,
                   inputs: Sequence[str], *, model_file: str = IN_MEMORY, files: Mapping[str, Any] | None = None,
                   model_kwargs: Mapping[str, Any] | None = None, weights: Mapping[str, Any] | None = None,
                   batch_images: int = DEFAULT_BATCH_IMAGES) -> Manifest:
    """The manifest of a PyTorch network: what a bundle's manifest says, for the torch backend."""
    h, w = spec.input_size
    transform = dict(output_transform or IDENTITY_TRANSFORM)
    return Manifest(
        schema_version=SCHEMA_VERSION, runtime="torch", precision="fp32", model_file=model_file,
        io={"inputs": [{"name": name, "shape": [-1, 3, h, w], "dtype": "float32"} for name in inputs],
            "output": "score", "max_batch": max(1, batch_images) * spec.num_crops},
        preprocess=spec.to_dict(),
        output_transform={"scale": float(transform["scale"]), "offset": float(transform["offset"])},
        files=dict(files or {model_file: {"sha256": "", "size": 0}}),
        extra={"model": {"name": model_name, "inputs": list(inputs), "kwargs": dict(model_kwargs or {}),
                         "weights": dict(weights or {"source": IN_MEMORY})}})


def checkpoint_manifest(model_name: str | None, checkpoint: str | Path | None, *, random_weights: bool = False,
                        batch_images: int = DEFAULT_BATCH_IMAGES) -> tuple[Path, Manifest]:
    """(folder, manifest) of a registered model's weights, found by the one resolver
    (:func:`edge_iqa.models.checkpoint.resolve_weights`)."""
    from edge_iqa.models import get_model_info

    resolved = resolve_weights(model_name, checkpoint, random_weights=random_weights)
    inputs = get_model_info(resolved.model_name).inputs
    if resolved.path is None:
        return Path("."), torch_manifest(resolved.model_name, resolved.preprocess, resolved.output_transform,
                                         inputs, weights=resolved.record, batch_images=batch_images)
    name = resolved.path.name
    files = {name: {"sha256": resolved.record["sha256"], "size": resolved.path.stat().st_size}}
    return resolved.path.parent, torch_manifest(
        resolved.model_name, resolved.preprocess, resolved.output_transform, inputs, model_file=name, files=files,
        model_kwargs=resolved.model_kwargs, weights=resolved.record, batch_images=batch_images)


def module_scorer(module: nn.Module, spec: PreprocessSpec, output_transform: Mapping[str, float] | None = None, *,
                  inputs: Sequence[str] = ("image",), model_name: str = IN_MEMORY,
                  batch_images: int = DEFAULT_BATCH_IMAGES) -> Any:
    """A :class:`~edge_iqa.runtime.scorer.Scorer` over a network in memory (training's validation,
    the export's PyTorch reference): the same scoring path as any bundle."""
    from edge_iqa.runtime.scorer import Scorer

    manifest = torch_manifest(model_name, spec, output_transform, inputs, batch_images=batch_images)
    return Scorer(TorchBackend(module, tuple(inputs), None), manifest)
