"""Scoring with a PyTorch model: the FP32 reference, on the runtime's one scoring path.

A :class:`TorchScorer` *is* a :class:`~edge_iqa.runtime.scorer.Scorer` whose backend is PyTorch
(:mod:`edge_iqa.runtime.backends.torch`): the same decoder, preprocessing, batching, crop averaging
and output transform as a bundle, so the two differ only in the network. For a checkpoint or a
registered model, ``edge_iqa.runtime.load(path_or_name)`` gives the same thing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from torch import nn

from edge_iqa.data.preprocess import PreprocessSpec
from edge_iqa.runtime.backends.torch import DEFAULT_BATCH_IMAGES, IN_MEMORY, TorchBackend, torch_manifest
from edge_iqa.runtime.scorer import Scorer, load


class TorchScorer(Scorer):
    """``score(images) -> float64 array`` on the training set's MOS scale, from a network in memory."""

    def __init__(self, model: nn.Module, spec: PreprocessSpec, output_transform: Mapping[str, float] | None = None,
                 batch_size: int = DEFAULT_BATCH_IMAGES, *, inputs: Sequence[str] = ("image",),
                 model_name: str = IN_MEMORY) -> None:
        manifest = torch_manifest(model_name, spec, output_transform, inputs, batch_images=batch_size)
        super().__init__(TorchBackend(model, tuple(inputs), None), manifest)

    @property
    def model(self) -> nn.Module:
        return self.backend.module

    @staticmethod
    def from_checkpoint(weights: str | Path, batch_size: int = DEFAULT_BATCH_IMAGES) -> Scorer:
        """Model, preprocessing and output scale from ``NAME.safetensors`` + ``NAME.json``."""
        return load(weights, backend_options={"batch_images": batch_size})

    @staticmethod
    def from_name(name: str, checkpoint: str | Path | None = None, batch_size: int = DEFAULT_BATCH_IMAGES) -> Scorer:
        """A registered model with its embedded weights (or ``checkpoint``)."""
        options = {"batch_images": batch_size}
        return load(checkpoint, model=name, backend_options=options) if checkpoint is not None \
            else load(name, backend_options=options)
