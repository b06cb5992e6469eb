"""Checkpoints: safetensors weights plus a small JSON config; safe loading of foreign files.

A checkpoint ``NAME.safetensors`` has ``NAME.json`` beside it holding the model name, builder
kwargs, the preprocessing spec and the output scale, so nothing else is needed to rebuild and
deploy it. Foreign ``.pth`` files are read with ``torch.load(weights_only=True)``: a pickle that
carries code is refused, never executed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edge_iqa.data.preprocess import PreprocessSpec
from edge_iqa.errors import CheckpointError

CONFIG_VERSION = 1
_WRAPPER_KEYS = ("params", "params_ema", "state_dict", "model", "net")


def config_path_for(weights: Path) -> Path:
    return weights.with_suffix(".json")


def save_checkpoint(
    model: nn.Module,
    path: str | Path,
    *,
    model_name: str,
    preprocess: PreprocessSpec,
    model_kwargs: dict[str, Any] | None = None,
    output_transform: dict[str, float] | None = None,
    metadata: dict[str, Any] | None = None,
    dtype: torch.dtype = torch.float32,
) -> Path:
    """Write ``path`` (.safetensors) and its ``.json`` config; returns the weights path."""
    from safetensors.torch import save_file

    path = Path(path).with_suffix(".safetensors")
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu", dtype if v.is_floating_point() else v.dtype).contiguous()
               for k, v in model.state_dict().items()}
    tmp = path.with_suffix(".safetensors.tmp")
    save_file(tensors, str(tmp), metadata={"model": model_name})
    tmp.replace(path)
    config = {
        "version": CONFIG_VERSION,
        "model": model_name,
        "model_kwargs": model_kwargs or {},
        "preprocess": preprocess.to_dict(),
        "output_transform": output_transform or {"scale": 1.0, "offset": 0.0},
        "metadata": metadata or {},
    }
    tmp_json = path.with_suffix(".json.tmp")
    tmp_json.write_text(json.dumps(config, indent=2) + "\n")
    tmp_json.replace(config_path_for(path))
    return path


def read_config(weights: str | Path) -> dict[str, Any]:
    """The JSON config of a safetensors checkpoint."""
    cfg_path = config_path_for(Path(weights))
    if not cfg_path.is_file():
        raise CheckpointError(f"{cfg_path}: missing; a checkpoint is NAME.safetensors plus NAME.json")
    try:
        config = json.loads(cfg_path.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{cfg_path}: not valid JSON ({exc}); restore it from the checkpoint's source "
                              "or re-save the checkpoint") from exc
    if int(config.get("version", 0)) > CONFIG_VERSION:
        raise CheckpointError(f"{cfg_path}: written by a newer edge-iqa; upgrade edge-iqa to load it")
    return config


def load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state dict from .safetensors or a pickle (.pth/.pt/.ckpt), safely.

    Published checkpoints wrap the weights (pyiqa: ``params``; Lightning: ``state_dict``) and
    DataParallel prefixes names with ``module.``: both are unwrapped here.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(f"{path}: not a valid safetensors file ({exc}); re-download it") from exc
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises UnpicklingError, RuntimeError, EOFError...
        raise CheckpointError(
            f"{path}: refused or unreadable ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}). "
            "edge-iqa loads pickles with weights_only=True so that a file carrying code is never run; "
            "convert trusted checkpoints to safetensors"
        ) from exc
    for key in _WRAPPER_KEYS:
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: does not hold a state dict of tensors; pass a file saved with "
                              "torch.save(model.state_dict()) or a .safetensors checkpoint")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def load_into(model: nn.Module, state_dict: dict[str, torch.Tensor], source: str = "checkpoint") -> None:
    """``load_state_dict(strict=True)`` with an error that lists what does not fit."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    wrong_shape = sorted(k for k in set(own) & set(state_dict) if own[k].shape != state_dict[k].shape)
    if missing or unexpected or wrong_shape:
        def head(keys: list[str]) -> str:
            return ", ".join(keys[:5]) + (f" ... (+{len(keys) - 5})" if len(keys) > 5 else "")

        raise CheckpointError(
            f"{source}: does not fit {type(model).__name__}: "
            f"{len(missing)} missing [{head(missing)}], {len(unexpected)} unexpected [{head(unexpected)}], "
            f"{len(wrong_shape)} with another shape [{head(wrong_shape)}]; is it for another model or variant?"
        )
    cast = {k: v.to(own[k].dtype) for k, v in state_dict.items()}
    model.load_state_dict(cast, strict=True)


def packaged_weights_path(relative: str) -> Path:
    """Absolute path of weights shipped inside the package (``edge_iqa/weights/...``)."""
    path = Path(str(resources.files("edge_iqa") / relative))
    if not path.is_file():
        raise CheckpointError(f"packaged weights {relative} are missing: reinstall edge-iqa")
    return path


# --- the one checkpoint resolver -------------------------------------------------------------------
IDENTITY_TRANSFORM = {"scale": 1.0, "offset": 0.0}


@dataclass(frozen=True)
class ResolvedWeights:
    """What to build and how to feed it: a registered model, its weights and the preprocessing and
    output scale that go with them (from the checkpoint's JSON config where there is one)."""

    model_name: str
    path: Path | None  # None: untrained (random head; ImageNet backbone where the builder has one)
    preprocess: PreprocessSpec
    output_transform: dict[str, float]
    model_kwargs: dict[str, Any]
    record: dict[str, Any]  # what a manifest records about the weights: source (+ sha256)

    def build(self) -> nn.Module:
        """The network, in eval mode, with these weights."""
        from edge_iqa.models.registry import create_model

        if self.path is not None:
            return create_model(self.model_name, checkpoint=self.path, **self.model_kwargs)
        try:  # ImageNet backbone + random head: realistic activations for calibration tests
            return create_model(self.model_name, backbone_weights="imagenet")
        except (TypeError, CheckpointError):
            return create_model(self.model_name)


def resolve_weights(model_name: str | None = None, checkpoint: str | Path | None = None, *,
                    random_weights: bool = False) -> ResolvedWeights:
    """The one checkpoint resolver (scoring, export and bench all come here).

    ``checkpoint``: an edge-iqa ``NAME.safetensors`` with its ``NAME.json`` (model, preprocessing and
    output scale from the config; ``model_name`` may be omitted but must match when given) or a
    foreign state dict (``.pth``/``.pt``/bare ``.safetensors``) of ``model_name`` (its registry
    preprocessing, raw output). Without one: the model's embedded weights, or with
    ``random_weights`` an untrained network (for tests); a model without embedded weights needs one.
    """
    from edge_iqa.checksums import sha256_file
    from edge_iqa.models.registry import get_model_info

    if checkpoint is not None:
        checkpoint = Path(checkpoint)
        if not checkpoint.is_file():
            raise CheckpointError(f"{checkpoint}: checkpoint not found")
        record = {"source": checkpoint.name, "sha256": sha256_file(checkpoint)}
        if checkpoint.suffix == ".safetensors" and config_path_for(checkpoint).is_file():
            config = read_config(checkpoint)
            if model_name is not None and config["model"] != model_name:
                raise CheckpointError(f"{checkpoint} is a {config['model']} checkpoint, not {model_name}; pass "
                                      f"--model {config['model']} (or leave the model out)")
            get_model_info(config["model"])  # an unknown model name fails here, with the list
            return ResolvedWeights(config["model"], checkpoint, PreprocessSpec.from_dict(config["preprocess"]),
                                   dict(config.get("output_transform") or IDENTITY_TRANSFORM),
                                   dict(config.get("model_kwargs", {})), record)
        if model_name is None:
            raise CheckpointError(f"{checkpoint} has no {config_path_for(checkpoint).name} naming its model; pass "
                                  "the model name too (--model NAME)")
        info = get_model_info(model_name)
        return ResolvedWeights(model_name, checkpoint, info.preprocess, dict(IDENTITY_TRANSFORM), {}, record)
    if model_name is None:
        raise CheckpointError("name a model or a checkpoint to score with")
    info = get_model_info(model_name)
    if info.default_weights is not None and not random_weights:
        try:
            path = packaged_weights_path(info.default_weights)
        except CheckpointError:
            raise CheckpointError(f"{model_name}'s embedded weights ({info.default_weights}) are not installed; "
                                  "pass --checkpoint PATH, or --random-weights to export an untrained model for "
                                  "testing") from None
        return resolve_weights(model_name, path)
    if not random_weights:
        raise CheckpointError(f"{model_name} ships no trained weights; pass --checkpoint PATH "
                              "(or --random-weights to export an untrained model for testing)")
    return ResolvedWeights(model_name, None, info.preprocess, dict(IDENTITY_TRANSFORM), {},
                           {"source": "random (untrained)"})
