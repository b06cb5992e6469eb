"""Model registry: each architecture file registers its variants with their preprocessing.

The registry is the only place that knows a model's input size, crop protocol, extra inputs and
output scale, so the CLI, export and bench never special-case a model by name (timm's pattern).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from edge_iqa.data.preprocess import PreprocessSpec
from edge_iqa.errors import ModelNotFoundError


@dataclass(frozen=True)
class ModelInfo:
    """What the toolchain needs to know about a registered model.

    Attributes:
        name: registry name (``create_model(name)``).
        builder: ``builder(**kwargs) -> nn.Module`` constructing the network with random weights.
        preprocess: deployment preprocessing (input size, crops, mean/std).
        description: one line for ``edge-iqa models``.
        inputs: names of the forward() inputs; every model takes ``image``; DGIQA adds ``depth``.
        output_range: (low, high) of the score the *checkpoint* produces, for display.
        default_weights: package-relative path of embedded trained weights (``pretrained=True``).
        family: ``edge`` for ours, ``seed`` for the published architectures.
        paper: citation or URL of the original work.
    """

    name: str
    builder: Callable[..., nn.Module]
    preprocess: PreprocessSpec
    description: str
    inputs: tuple[str, ...] = ("image",)
    output_range: tuple[float, float] = (0.0, 100.0)
    default_weights: str | None = None
    family: str = "edge"
    paper: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


_REGISTRY: dict[str, ModelInfo] = {}


def register_model(
    name: str,
    *,
    preprocess: PreprocessSpec,
    description: str,
    **info: Any,
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator: register ``builder`` under ``name``."""

    def decorator(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        _REGISTRY[name] = ModelInfo(name=name, builder=builder, preprocess=preprocess,
                                    description=description, **info)
        return builder

    return decorator


def list_models(family: str | None = None) -> list[str]:
    return sorted(n for n, i in _REGISTRY.items() if family is None or i.family == family)


def get_model_info(name: str) -> ModelInfo:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ModelNotFoundError(
            f"no model named {name!r}; registered models: {', '.join(list_models())} "
            "(see `edge-iqa models`)"
        ) from None


def create_model(
    name: str,
    pretrained: bool = False,
    checkpoint: str | Path | None = None,
    **kwargs: Any,
) -> nn.Module:
    """Build a registered model, in eval mode.

    Args:
        name: registry name, see :func:`list_models`.
        pretrained: load the model's embedded trained IQA weights (only models that ship them,
            e.g. ``edge_hybrid_n``).
        checkpoint: a ``.safetensors`` checkpoint (with its ``.json`` config beside it) or a
            ``.pth``/``.pt`` state dict, loaded with ``strict=True`` (pickles with ``weights_only``).
        **kwargs: forwarded to the architecture's builder (e.g. ``backbone_weights=PATH`` to
            initialise a CNN backbone from ImageNet weights before training).
    """
    from edge_iqa.models.checkpoint import load_state_dict_file, packaged_weights_path

    info = get_model_info(name)
    model = info.builder(**kwargs)
    if pretrained and checkpoint is None:
        if info.default_weights is None:
            raise ModelNotFoundError(
                f"{name!r} ships no trained weights; pass checkpoint=PATH (a published checkpoint)"
            )
        checkpoint = packaged_weights_path(info.default_weights)
    if checkpoint is not None:
        from edge_iqa.models.checkpoint import load_into

        load_into(model, load_state_dict_file(checkpoint), source=str(checkpoint))
    return model.eval()
