"""Frozen-stem feature cache: the default CPU recipe's trick.

The first MobileNetV2 blocks (0..6, stride 8) stay at their ImageNet weights, so their output for
an image never changes during training. We compute it once per image -- for the image resized by
the model's spec and for its mirror image -- and keep it in RAM as fp16 (32 x 48 x 48 x 2 bytes =
147 KB per view at 384 px). Training then takes random crops *in feature space* (one feature cell
= 8 px, so a crop of ``c`` cells is a ``8c`` px crop of the image up to border effects of the
frozen convolutions) and runs only blocks 7..17 and the head (``forward_from_stem``). The exported
model is the unchanged full network.

The cache is also written to disk (safetensors) under a key of the images, the spec and the stem
weights, so the splits of one evaluation share a single pass over the data.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edge_iqa.data.datasets import LabelFile
from edge_iqa.data.imageio import load_image
from edge_iqa.data.preprocess import PreprocessSpec

STRIDE = 8  # output stride of the cached stem (MobileNetV2 block 6)


def stem_of(model: nn.Module) -> nn.Module:
    """The frozen part of an ``EdgeHybridIQA``: backbone blocks 0..6."""
    from edge_iqa.models.edge_hybrid import MOBILENET_V2_TAPS

    return model.backbone[: MOBILENET_V2_TAPS[0] + 1]


def _cache_key(labels: LabelFile, spec: PreprocessSpec, stem: nn.Module, views: int = 2) -> str:
    digest = hashlib.sha256()
    digest.update(json.dumps(spec.to_dict(), sort_keys=True).encode())
    if views != 2:  # two views (plain + mirror) was the only layout before; its keys stay valid
        digest.update(f"views={views}".encode())
    for path in labels.paths:
        stat = path.stat()
        digest.update(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    for name, tensor in stem.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:20]


def full_image_tensor(image: np.ndarray, spec: PreprocessSpec) -> torch.Tensor:
    """Resize by the spec, normalise, keep the whole image (no crop): (1, 3, H, W) float32."""
    resized = spec.resize_image(image)
    whole = dataclasses.replace(spec, input_size=resized.shape[:2], resize="none", crop="none")
    return torch.from_numpy(whole.to_tensor_batch(resized))


class StemCache:
    """Per image a (views, C, h, w) fp16 tensor: the stem output of the image and (views=2) of its
    mirror. One view halves the memory (10,000 BIQ2021 images: 1.5 GB instead of 2.9 GB) at the
    cost of the mirror augmentation."""

    def __init__(self, features: list[torch.Tensor]) -> None:
        self.features = features

    def __len__(self) -> int:
        return len(self.features)

    @classmethod
    @torch.no_grad()
    def build(cls, labels: LabelFile, spec: PreprocessSpec, stem: nn.Module, device: torch.device,
              progress: Callable[[int], None] | None = None, views: int = 2) -> StemCache:
        if views not in (1, 2):
            raise ValueError(f"views must be 1 (plain) or 2 (plain + mirror), got {views}")
        stem = stem.eval().to(device)
        features = []
        for item in labels.items:
            x = full_image_tensor(load_image(item.path), spec).to(device)
            out = stem(torch.cat([x, x.flip(-1)]) if views == 2 else x)
            features.append(out.to("cpu", torch.float16).contiguous())
            if progress is not None:
                progress(1)
        return cls(features)

    @classmethod
    def load_or_build(cls, labels: LabelFile, spec: PreprocessSpec, stem: nn.Module, device: torch.device,
                      cache_dir: Path | None, progress: Callable[[int], None] | None = None,
                      log: Callable[[str], None] = print, views: int = 2) -> StemCache:
        from safetensors.torch import load_file, save_file

        path = None
        if cache_dir is not None:
            path = Path(cache_dir) / f"stem-{_cache_key(labels, spec, stem, views)}.safetensors"
            if path.is_file():
                tensors = load_file(str(path))
                if len(tensors) == len(labels):
                    log(f"stem cache: loaded {path}")
                    return cls([tensors[str(i)] for i in range(len(labels))])
        cache = cls.build(labels, spec, stem, device, progress, views)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{id(cache)}.tmp")
            save_file({str(i): t for i, t in enumerate(cache.features)}, str(tmp))
            tmp.replace(path)  # atomic: parallel runs never read a half-written cache
            log(f"stem cache: wrote {path}")
        return cache

    def random_crops(self, indices: np.ndarray, cells: int, rng: np.random.Generator) -> torch.Tensor:
        """A random ``cells`` x ``cells`` window of a random cached view (plain or mirrored) per index."""
        crops = []
        for index in indices:
            views = self.features[int(index)]
            view = views[int(rng.integers(0, len(views)))]
            _, h, w = view.shape
            c_h, c_w = min(cells, h), min(cells, w)
            top, left = int(rng.integers(0, h - c_h + 1)), int(rng.integers(0, w - c_w + 1))
            crops.append(view[:, top : top + c_h, left : left + c_w])
        return torch.stack(crops).float()

    def deployment_crop(self, index: int, spec: PreprocessSpec) -> torch.Tensor:
        """The window the spec's deployment crop sees, in feature cells: (1, C, h, w) float32.

        Exact for images whose resized size equals the input size; otherwise equal to the real
        crop's stem output up to the frozen convolutions' border effects."""
        view = self.features[index][0]
        _, h, w = view.shape
        ch, cw = spec.input_size[0] // STRIDE, spec.input_size[1] // STRIDE
        boxes = dataclasses.replace(spec, input_size=(ch, cw)).crop_boxes(h, w)
        return torch.stack([view[:, r : r + ch, c : c + cw] for r, c in boxes]).float()
