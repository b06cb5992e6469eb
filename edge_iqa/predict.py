"""Scoring images with a PyTorch model: the FP32 reference path.

The same :class:`~edge_iqa.data.preprocess.PreprocessSpec` and decoder as the runtime wrapper, so
the two can be compared image for image. Multi-crop models score each crop and average.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from edge_iqa.data.imageio import ImageSource, load_image
from edge_iqa.data.preprocess import PreprocessSpec
from edge_iqa.errors import ExportError
from edge_iqa.models import create_model, get_model_info
from edge_iqa.models.checkpoint import read_config


class TorchScorer:
    """``score(images) -> float64 array`` on the training set's MOS scale."""

    def __init__(self, model: nn.Module, spec: PreprocessSpec, output_transform: dict[str, float] | None = None,
                 batch_size: int = 8) -> None:
        self.model = model.eval()
        self.spec = spec
        transform = output_transform or {"scale": 1.0, "offset": 0.0}
        self.scale, self.offset = float(transform["scale"]), float(transform["offset"])
        self.batch_size = batch_size

    @classmethod
    def from_checkpoint(cls, weights: str | Path, **kwargs: Any) -> TorchScorer:
        """Rebuild model, preprocessing and output scale from ``NAME.safetensors`` + ``NAME.json``."""
        config = read_config(weights)
        model = create_model(config["model"], checkpoint=weights, **config.get("model_kwargs", {}))
        return cls(model, PreprocessSpec.from_dict(config["preprocess"]), config.get("output_transform"), **kwargs)

    @classmethod
    def from_name(cls, name: str, checkpoint: str | Path | None = None, **kwargs: Any) -> TorchScorer:
        """A registered model with its embedded weights (or ``checkpoint``)."""
        info = get_model_info(name)
        if len(info.inputs) > 1:
            raise ExportError(f"{name} needs inputs {info.inputs}; score it through its own API")
        if checkpoint is not None and Path(checkpoint).suffix == ".safetensors" and \
                Path(checkpoint).with_suffix(".json").is_file():
            return cls.from_checkpoint(checkpoint, **kwargs)
        if checkpoint is None and info.default_weights is not None:
            from edge_iqa.models.checkpoint import packaged_weights_path

            return cls.from_checkpoint(packaged_weights_path(info.default_weights), **kwargs)
        model = create_model(name, checkpoint=checkpoint)
        return cls(model, info.preprocess, None, **kwargs)

    def preprocess(self, image: ImageSource) -> np.ndarray:
        return self.spec.apply(load_image(image))

    @torch.inference_mode()
    def score_tensors(self, batches: Sequence[np.ndarray]) -> np.ndarray:
        """Preprocessed per-image crop stacks -> one score per image (crops averaged)."""
        crops = np.concatenate(batches)
        outputs = []
        for start in range(0, len(crops), self.batch_size * self.spec.num_crops):
            chunk = torch.from_numpy(crops[start : start + self.batch_size * self.spec.num_crops])
            outputs.append(self.model(chunk).reshape(-1).double().numpy())
        raw = np.concatenate(outputs).reshape(len(batches), -1).mean(axis=1)
        return raw * self.scale + self.offset

    def score(self, images: ImageSource | Iterable[ImageSource]) -> np.ndarray:
        if isinstance(images, (str, Path, bytes, np.ndarray)) and not (
            isinstance(images, np.ndarray) and images.ndim == 4
        ):
            images = [images]
        return self.score_tensors([self.preprocess(image) for image in images])
