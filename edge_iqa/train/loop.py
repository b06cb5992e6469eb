"""Training on MOS-labelled images: one split per :func:`train_split`, k folds / seeded splits on top.

Two recipes share the optimiser, schedule, loss, metrics and checkpointing:

- ``stem-cache`` (default for ``edge_hybrid_*``): backbone blocks 0..6 frozen at ImageNet weights
  and cached once per image (and its mirror); random crops in feature space; blocks 7..17 + head
  trained through ``model.forward_from_stem``. Fits a 2-core CPU (docs/training.md).
- ``full``: any registered model, images decoded and cropped every step (GPU-sized work).

Outputs in ``out``: ``best.safetensors``/``.json`` (best validation SROCC), ``last.safetensors``/
``.json``, ``state.pt`` (optimizer + schedule, for ``--resume``; read with ``weights_only=True``),
``metrics.json`` (config, per-epoch metrics, best, last, exact deployment-path evaluation).

``--init CHECKPOINT`` starts from an edge-iqa checkpoint of the same model (e.g. pre-trained on
``edge-iqa synth`` data) instead of ImageNet backbone + random head; its path and sha256 go into
``metrics.json`` and the checkpoint metadata.
"""

from __future__ import annotations

import dataclasses
import json
import math
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from edge_iqa.data.datasets import LabelFile, kfold_splits, read_labels
from edge_iqa.data.preprocess import PreprocessSpec
from edge_iqa.errors import CheckpointError, DatasetError
from edge_iqa.metrics import evaluate
from edge_iqa.train.int8_noise import consistency_loss
from edge_iqa.train.losses import IQALoss
from edge_iqa.train.multi import Combined, combine, count_batches, dataset_repeats, plan_batches, seeded_splits

STATE_VERSION = 1
NOISE_IMAGES = 16  # training images on which the stem's propagated INT8 noise is measured


@dataclass
class TrainConfig:
    """Everything that defines a run (stored in ``metrics.json`` and the checkpoint metadata)."""

    model: str = "edge_hybrid_n"
    data: str | list[str] = ""  # one label file, or several datasets (edge_iqa.train.multi)
    out: str = "runs/train"
    image_root: str | None = None
    recipe: str = "auto"  # auto | stem-cache | full
    epochs: int = 8
    batch_size: int = 16
    lr: float = 5e-4  # head; the trainable backbone blocks get lr * backbone_lr_mult
    backbone_lr_mult: float = 0.2
    weight_decay: float = 0.05
    warmup_epochs: float = 1.0
    min_lr_ratio: float = 0.01
    crop: int = 256  # training crop (px, a multiple of 8 for the stem-cache recipe)
    freeze_through: int = 13  # stem-cache: backbone blocks 0..N stay at ImageNet weights (6..16)
    loss: dict[str, float] = field(default_factory=lambda: IQALoss().to_dict())
    seed: int = 0
    split_seed: int = 0
    val_fraction: float | list[float] = 0.2  # one for all datasets, or one per dataset
    repeat: int | list[int] = 1  # passes over each dataset's training images per epoch (one for all, or per dataset)
    folds: int = 0
    fold: int | None = None  # run only this fold of --folds
    device: str = "auto"
    amp: bool = True  # mixed precision when on CUDA
    threads: int = 0  # torch CPU threads (0: torch's default)
    workers: int = 0  # DataLoader workers for the full recipe
    cache_dir: str | None = "runs/stem_cache"
    cache_views: int = 2  # stem-cache: 2 = image + mirror (flip augmentation), 1 = image only (half the memory)
    exact_eval: bool = True  # re-score the val set through the deployment path at the end
    backbone_weights: str = "imagenet"
    max_steps: int | None = None  # stop early after this many optimiser steps (smoke tests)
    init: str | None = None  # start from this edge-iqa checkpoint's weights instead of ImageNet + random head
    int8_noise: float = 0.0  # weight of the INT8-noise consistency term (edge_iqa.train.int8_noise); 0 = off
    int8_noise_target: str = "cpu"  # the target profile whose keep_fp says which layers INT8 leaves in float
    progress: bool = True


def _log(message: str) -> None:
    print(message, flush=True)


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _recipe(config: TrainConfig, model: nn.Module) -> str:
    if config.recipe == "auto":
        return "stem-cache" if hasattr(model, "forward_from_stem") else "full"
    if config.recipe == "stem-cache" and not hasattr(model, "forward_from_stem"):
        raise DatasetError(f"{config.model} has no forward_from_stem; use --recipe full")
    if config.recipe not in ("stem-cache", "full"):
        raise DatasetError(f"unknown recipe {config.recipe!r}; use auto, stem-cache or full")
    return config.recipe


def _param_groups(model: nn.Module, frozen: set[int], config: TrainConfig) -> list[dict[str, Any]]:
    """Backbone vs head learning rates; no weight decay on biases, norms and the pooling query."""
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad or id(param) in frozen:
            continue
        is_backbone = name.startswith("backbone.")
        decay = param.ndim > 1 and "pool_query" not in name
        groups.setdefault((is_backbone, decay), []).append(param)
    return [
        {"params": params, "lr": config.lr * (config.backbone_lr_mult if bb else 1.0),
         "weight_decay": config.weight_decay if decay else 0.0}
        for (bb, decay), params in groups.items()
    ]


def _schedule(total_steps: int, warmup_steps: int, min_ratio: float) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


class _Progress:
    """A rich progress bar on a terminal; nothing (one line per epoch is logged) in files/CI."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self._bar = None

    def __enter__(self) -> _Progress:
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeRemainingColumn(), transient=True)
            self._bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)

    def task(self, description: str, total: int) -> Callable[[int], None]:
        if self._bar is None:
            return lambda n: None
        task_id = self._bar.add_task(description, total=total)
        return lambda n: self._bar.advance(task_id, n)


# --- the two recipes: how a batch is produced and how the val set is scored -----------------------
class _StemCacheRecipe:
    def __init__(self, model: nn.Module, labels: LabelFile, spec: PreprocessSpec, config: TrainConfig,
                 device: torch.device, progress: _Progress, datasets: tuple[LabelFile, ...] = ()) -> None:
        from edge_iqa.train.stem_cache import STRIDE, StemCache, stem_of

        if config.crop % STRIDE:
            raise DatasetError(f"--crop must be a multiple of {STRIDE} px for the stem-cache recipe")
        self.model, self.spec, self.device = model, spec, device
        self.cells = config.crop // STRIDE
        stem = stem_of(model)
        first = len(stem)
        if not first - 1 <= config.freeze_through < len(model.backbone) - 1:
            raise DatasetError(f"--freeze-through must be between {first - 1} and {len(model.backbone) - 2}")
        # Blocks first..freeze_through run on every batch but stay frozen (no grad, BN in eval).
        self.frozen_blocks = model.backbone[first : config.freeze_through + 1]
        self.first_trained = config.freeze_through + 1
        frozen_params = [*stem.parameters(), *self.frozen_blocks.parameters()]
        for param in frozen_params:
            param.requires_grad_(False)
        self.frozen = {id(p) for p in frozen_params}
        cache_dir = Path(config.cache_dir) if config.cache_dir else None
        advance = progress.task("caching stem features", len(labels))
        started = time.perf_counter()
        # One cache per dataset: each is keyed (and reused) on its own, whatever it is combined with.
        features: list[torch.Tensor] = []
        for part in datasets or [labels]:
            features += StemCache.load_or_build(part, spec, stem, device, cache_dir, advance, _log,
                                                config.cache_views).features
        self.cache = StemCache(features)
        self.cache_seconds = time.perf_counter() - started

    def set_train_mode(self) -> None:
        from edge_iqa.train.stem_cache import stem_of

        self.model.train()
        stem_of(self.model).eval()  # frozen BN statistics stay ImageNet's
        self.frozen_blocks.eval()

    def batches(self, chunks: list[np.ndarray], targets: np.ndarray, groups: np.ndarray,
                rng: np.random.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        for chunk in chunks:
            yield (self.cache.random_crops(chunk, self.cells, rng), torch.from_numpy(targets[chunk]),
                   torch.from_numpy(groups[chunk]))

    def enable_int8_noise(self, layers: list[nn.Module], paths: list[Path]) -> dict[str, Any]:
        """The noisy forward adds, at the cached stem output, what the stem's quantized layers
        would add (measured on the images ``paths``); the layers after the stem get their own noise."""
        from edge_iqa.data.imageio import load_image
        from edge_iqa.train.int8_noise import propagated_stem_noise
        from edge_iqa.train.stem_cache import full_image_tensor, stem_of

        inside = {id(m) for m in stem_of(self.model).modules()}
        stem_layers = [layer for layer in layers if id(layer) in inside]
        self.noise_layers = [layer for layer in layers if id(layer) not in inside]
        images = [full_image_tensor(load_image(path), self.spec).to(self.device) for path in paths]
        self.stem_noise = propagated_stem_noise(stem_of(self.model), stem_layers, images)
        spread = self.stem_noise.flatten()
        return {"stem_noise_std": {"min": round(float(spread.min()), 5), "median": round(float(spread.median()), 5),
                                   "max": round(float(spread.max()), 5), "images": len(images)}}

    def noisy_forward(self, stem: torch.Tensor) -> torch.Tensor:
        from edge_iqa.train.int8_noise import noisy_inputs

        with noisy_inputs(self.noise_layers):
            return self.forward(stem + torch.randn_like(stem) * self.stem_noise)

    def forward(self, stem: torch.Tensor) -> torch.Tensor:
        """``model.forward_from_stem`` with the frozen blocks run without autograd."""
        from edge_iqa.models.edge_hybrid import MOBILENET_V2_TAPS

        taps, x = [stem], stem
        with torch.no_grad():
            for offset, block in enumerate(self.frozen_blocks):
                x = block(x)
                if self.first_trained - len(self.frozen_blocks) + offset in MOBILENET_V2_TAPS:
                    taps.append(x)
        taps += self.model.pyramid(x, start=self.first_trained)
        return self.model.head_forward(*taps)

    @torch.no_grad()
    def predict(self, indices: np.ndarray, batch_size: int) -> np.ndarray:
        self.model.eval()
        outputs = []
        for index in indices:  # per image: sizes may differ, and eval is cheap next to training
            crops = self.cache.deployment_crop(int(index), self.spec).to(self.device)
            outputs.append(float(self.model.forward_from_stem(crops).float().mean()))
        return np.asarray(outputs)


class _FullRecipe:
    def __init__(self, model: nn.Module, labels: LabelFile, spec: PreprocessSpec, config: TrainConfig,
                 device: torch.device, progress: _Progress, datasets: tuple[LabelFile, ...] = ()) -> None:
        self.model, self.labels, self.spec, self.device, self.config = model, labels, spec, device, config
        self.frozen: set[int] = set()
        self.cache_seconds = 0.0
        size = spec.input_size
        self.crop = (min(config.crop, size[0]), min(config.crop, size[1])) if config.crop else size

    def set_train_mode(self) -> None:
        self.model.train()

    def batches(self, chunks: list[np.ndarray], targets: np.ndarray, groups: np.ndarray,
                rng: np.random.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        from torch.utils.data import DataLoader

        from edge_iqa.data.datasets import IQAImageDataset

        dataset = IQAImageDataset(self.labels, self.spec, {"scale": 1.0, "offset": 0.0}, train=True,
                                  crop_size=self.crop, seed=int(rng.integers(0, 2**31)))
        dataset.targets = targets.astype(np.float32)
        loader = DataLoader(dataset, batch_sampler=[[int(i) for i in chunk] for chunk in chunks],
                            num_workers=self.config.workers, pin_memory=self.device.type == "cuda")
        for chunk, (x, y) in zip(chunks, loader, strict=True):
            yield x, y, torch.from_numpy(groups[chunk])

    def enable_int8_noise(self, layers: list[nn.Module], paths: list[Path]) -> dict[str, Any]:
        self.noise_layers = layers  # the whole network runs on every step: every layer gets its noise
        return {}

    def noisy_forward(self, x: torch.Tensor) -> torch.Tensor:
        from edge_iqa.train.int8_noise import noisy_inputs

        with noisy_inputs(self.noise_layers):
            return self.model(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    @torch.no_grad()
    def predict(self, indices: np.ndarray, batch_size: int) -> np.ndarray:
        from edge_iqa.predict import TorchScorer

        self.model.eval()
        scorer = TorchScorer(self.model, self.spec, None, batch_size=batch_size)
        return scorer.score([self.labels.items[int(i)].path for i in indices])


# --- --init: start from a checkpoint ----------------------------------------------------------------
def load_init(model: nn.Module, config: TrainConfig) -> dict[str, Any]:
    """Load ``config.init`` (an edge-iqa checkpoint of the same model) into ``model``, strictly.

    Returns what the run records about it: resolved path, sha256, and the source run's metadata
    (model, recipe, epoch) so a fine-tune can be traced to its pre-training.
    """
    from edge_iqa.models.checkpoint import load_into, load_state_dict_file, read_config
    from edge_iqa.runtime.bundle import sha256_file

    path = Path(config.init or "")
    if not path.is_file():
        raise CheckpointError(f"--init {path}: no such checkpoint file; pass the best.safetensors or "
                              "last.safetensors of a previous `edge-iqa train` run")
    if path.suffix != ".safetensors":
        raise CheckpointError(f"--init {path}: not an edge-iqa checkpoint; pass NAME.safetensors with its "
                              "NAME.json beside it (written by `edge-iqa train`)")
    source = read_config(path)
    if source.get("model") != config.model:
        raise CheckpointError(f"--init {path}: a checkpoint of {source.get('model')!r}, but this run trains "
                              f"{config.model!r}; pass --model {source.get('model')} or a checkpoint of "
                              f"{config.model}")
    if source.get("model_kwargs"):
        raise CheckpointError(f"--init {path}: built with model_kwargs {source['model_kwargs']}, which "
                              "`edge-iqa train` does not set; use a checkpoint of the default variant")
    load_into(model, load_state_dict_file(path), source=f"--init {path}")
    meta = source.get("metadata") or {}
    return {"path": str(path.resolve()), "sha256": sha256_file(path), "model": source["model"],
            "source_recipe": meta.get("recipe"), "source_epoch": meta.get("epoch"),
            "source_data": (meta.get("config") or {}).get("data")}


def _frozen_differences(model: nn.Module, reference: dict[str, torch.Tensor], frozen_blocks: int) -> list[int]:
    """Backbone blocks 0..frozen_blocks-1 whose parameters or buffers differ from ``reference``."""
    state = model.state_dict()
    differing = set()
    for name, tensor in reference.items():
        block = int(name.split(".")[1])
        if block < frozen_blocks and not torch.equal(state[name], tensor):
            differing.add(block)
    return sorted(differing)


def _enable_int8_noise(recipe: _StemCacheRecipe | _FullRecipe, model: nn.Module, config: TrainConfig,
                       labels: LabelFile, train_idx: np.ndarray) -> dict[str, Any]:
    """Turn on the noisy second forward pass of ``--int8-noise``; returns what the run records."""
    from edge_iqa.export.targets import load_target
    from edge_iqa.train.int8_noise import quantized_layers

    if config.int8_noise < 0:
        raise DatasetError(f"--int8-noise must be >= 0 (the weight of the consistency term), got {config.int8_noise}")
    profile = load_target(config.int8_noise_target)
    layers = list(quantized_layers(model, profile.keeps_fp).values())
    if not layers:
        raise DatasetError(f"--int8-noise: target {profile.name!r} keeps every layer of {config.model} in float; "
                           "nothing would be quantized")
    paths = [labels.items[int(i)].path for i in train_idx[:NOISE_IMAGES]]
    info = {"weight": config.int8_noise, "target": profile.name, "keep_fp": list(profile.quantization.keep_fp),
            "noisy_layers": len(layers), **recipe.enable_int8_noise(layers, paths)}
    _log(f"int8 noise: {len(layers)} layers of {config.model} get rounding noise ({profile.name} profile), "
         f"weight {config.int8_noise}")
    return info


# --- one split -----------------------------------------------------------------------------------
def _save_state(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
                scaler: Any, epoch: int, step: int, history: list[dict[str, Any]], best: dict[str, Any] | None) -> None:
    state = {
        "version": STATE_VERSION, "epoch": epoch, "step": step,
        "model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None else {},
        "history": json.dumps(history), "best": json.dumps(best),
    }
    tmp = path.with_suffix(".pt.tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def _metrics_dict(pred_mos: np.ndarray, mos: np.ndarray) -> dict[str, float]:
    return {k: round(float(v), 6) for k, v in evaluate(pred_mos, mos).to_dict().items()}


def _validate(predict: Callable[[np.ndarray], np.ndarray], data: Combined) -> dict[str, Any]:
    """Per-dataset metrics of model scores against each dataset's MOS mapped onto the model scale.

    Returns ``{"val": ..., "val_datasets": {name: metrics}}``; ``val`` is the one dataset's metrics,
    or with several datasets the mean of each metric over them (RMSE on the shared model scale) and
    ``n`` the number of images in all."""
    parts = [p for p in data.parts if len(p.val_idx) >= 3]
    if not parts:
        return {}
    scores = predict(np.concatenate([p.val_idx for p in parts]))
    per, start = {}, 0
    for part in parts:
        n = len(part.val_idx)
        target = part.mapping.to_model_score(data.labels.mos[part.val_idx])
        per[part.mapping.name] = _metrics_dict(scores[start : start + n], target)
        start += n
    mean = {k: round(float(np.mean([m[k] for m in per.values()])), 6) for k in next(iter(per.values()))}
    mean["n"] = int(sum(m["n"] for m in per.values()))  # images, not a mean
    return {"val": mean, "val_datasets": per}


def train_split(config: TrainConfig, data: Combined, out: Path, resume: bool = False) -> dict[str, Any]:
    """Train one model on ``data``'s training parts, validate on its val parts (may be empty)."""
    from edge_iqa.models import create_model, get_model_info
    from edge_iqa.models.checkpoint import save_checkpoint

    started = time.perf_counter()
    if config.threads:
        torch.set_num_threads(config.threads)
    device = _device(config.device)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    np.random.seed(config.seed)  # noqa: NPY002 - only for third-party code that uses the global RNG
    info = get_model_info(config.model)
    spec = info.preprocess
    model_kwargs: dict[str, Any] = {}
    model = create_model(config.model, backbone_weights=config.backbone_weights).to(device)
    init_info: dict[str, Any] | None = None
    if config.init:
        # Before the recipe: the stem cache must be computed from the weights the run starts from.
        imagenet_backbone = {k: v.clone() for k, v in model.state_dict().items() if k.startswith("backbone.")}
        init_info = load_init(model, config)
        _log(f"init: {init_info['path']} (sha256 {init_info['sha256'][:16]}...)")

    labels, transform, targets, groups = data.labels, data.output_transform, data.targets, data.group
    train_idx, val_idx = data.train_idx, data.val_idx
    train_parts = [p.train_idx for p in data.parts]
    repeats = dataset_repeats(config.repeat, len(train_parts))
    datasets_meta = [p.mapping.to_dict() for p in data.parts]
    loss_fn = IQALoss(**config.loss)
    with _Progress(config.progress) as progress:
        recipe_name = _recipe(config, model)
        recipe = (_StemCacheRecipe if recipe_name == "stem-cache" else _FullRecipe)(
            model, labels, spec, config, device, progress, data.files)
        if init_info is not None and recipe_name == "stem-cache":
            # Frozen blocks keep the init checkpoint's weights. If they are not ImageNet's, the stem
            # cache key (a hash of the stem weights) differs, so the run builds its own cache and
            # never reuses one computed with another stem; we record which blocks differ.
            differing = _frozen_differences(model, imagenet_backbone, config.freeze_through + 1)
            init_info["frozen_blocks"] = f"0..{config.freeze_through}"
            init_info["frozen_equal_imagenet"] = not differing
            init_info["frozen_blocks_differing"] = differing
            if differing:
                _log(f"init: frozen backbone blocks {differing} differ from ImageNet's; they stay frozen at "
                     "the init checkpoint's values and the stem cache is keyed by them")
        noise_info = _enable_int8_noise(recipe, model, config, labels, train_idx) if config.int8_noise else None
        optimizer = torch.optim.AdamW(_param_groups(model, recipe.frozen, config), lr=config.lr)
        steps_per_epoch = max(1, count_batches([len(p) for p in train_parts], config.batch_size, repeats))
        total_steps = steps_per_epoch * config.epochs
        warmup = max(1, int(round(config.warmup_epochs * steps_per_epoch)))
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(total_steps, warmup, config.min_lr_ratio))
        use_amp = config.amp and device.type == "cuda"
        amp_dtype = torch.bfloat16 if use_amp and torch.cuda.is_bf16_supported() else torch.float16
        scaler = torch.amp.GradScaler("cuda") if use_amp and amp_dtype == torch.float16 else None

        history: list[dict[str, Any]] = []
        best: dict[str, Any] | None = None
        start_epoch, step = 0, 0
        state_path = out / "state.pt"
        if resume:
            if not state_path.is_file():
                raise CheckpointError(f"{state_path}: nothing to resume; start without --resume")
            state = torch.load(state_path, map_location=device, weights_only=True)
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            if scaler is not None and state["scaler"]:
                scaler.load_state_dict(state["scaler"])
            start_epoch, step = int(state["epoch"]), int(state["step"])
            history, best = json.loads(state["history"]), json.loads(state["best"])
            _log(f"resumed from {state_path} at epoch {start_epoch}")

        def checkpoint(name: str, meta: dict[str, Any]) -> None:
            save_checkpoint(model, out / f"{name}.safetensors", model_name=config.model, preprocess=spec,
                            model_kwargs=model_kwargs, output_transform=transform,
                            metadata={"config": asdict(config), "recipe": recipe_name, "init": init_info,
                                      "datasets": datasets_meta, **meta})

        for epoch in range(start_epoch, config.epochs):
            # Per-epoch generators: a resumed run draws exactly what an uninterrupted one would.
            rng = np.random.default_rng((config.seed, epoch))
            torch.manual_seed(config.seed * 1_000_003 + epoch)
            recipe.set_train_mode()
            losses = []
            advance = progress.task(f"epoch {epoch + 1}/{config.epochs}", steps_per_epoch)
            epoch_start = time.perf_counter()
            chunks = plan_batches(train_parts, config.batch_size, rng, repeats)
            for x, y, g in recipe.batches(chunks, targets, groups, rng):
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
                    pred = recipe.forward(x)
                    noisy = recipe.noisy_forward(x) if config.int8_noise else None
                loss = loss_fn(pred.float(), y, g.to(device))
                if noisy is not None:
                    loss = loss + config.int8_noise * consistency_loss(noisy, pred)
                optimizer.zero_grad(set_to_none=True)
                if scaler is not None:
                    scaler.scale(loss).backward()
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    loss.backward()
                    optimizer.step()
                scheduler.step()
                step += 1
                losses.append(loss.item())
                advance(1)
                if config.max_steps is not None and step >= config.max_steps:
                    break
            record: dict[str, Any] = {"epoch": epoch + 1, "step": step, "train_loss": float(np.mean(losses)),
                                      "train_seconds": round(time.perf_counter() - epoch_start, 1)}
            record.update(_validate(
                lambda idx: recipe.predict(idx, config.batch_size) * transform["scale"] + transform["offset"], data))
            history.append(record)
            val_text = ""
            if "val" in record:
                v = record["val"]
                val_text = (f" | val SROCC {v['srocc']:.4f} PLCC {v['plcc']:.4f} KRCC {v['krcc']:.4f} "
                            f"RMSE {v['rmse']:.2f}")
                if len(record["val_datasets"]) > 1:
                    val_text += "".join(f" | {name} SROCC {m['srocc']:.4f} PLCC {m['plcc']:.4f}"
                                        for name, m in record["val_datasets"].items())
                if best is None or v["srocc"] > best["val"]["srocc"]:
                    best = record
                    checkpoint("best", {"epoch": epoch + 1, "val": v})
            _log(f"epoch {epoch + 1}/{config.epochs} loss {record['train_loss']:.4f} "
                 f"({record['train_seconds']:.0f}s){val_text}")
            checkpoint("last", {"epoch": epoch + 1, **({"val": record["val"]} if "val" in record else {})})
            _save_state(state_path, model, optimizer, scheduler, scaler, epoch + 1, step, history, best)
            if config.max_steps is not None and step >= config.max_steps:
                break

    result: dict[str, Any] = {
        "config": asdict(config), "recipe": recipe_name, "device": str(device),
        "split": {"train": len(train_idx), "val": len(val_idx), "split_seed": config.split_seed,
                  "val_fraction": config.val_fraction, "folds": config.folds, "fold": config.fold},
        "output_transform": transform, "datasets": datasets_meta, "history": history,
        "last": history[-1] if history else None,
        "best": best, "cache_seconds": round(recipe.cache_seconds, 1), "init": init_info,
        "int8_noise": noise_info,
    }
    if config.exact_eval and len(val_idx) >= 3:
        # The number to report: the last model scored exactly as deployed (decode -> spec -> full net).
        from edge_iqa.predict import TorchScorer

        model.eval()
        scorer = TorchScorer(model, spec, transform, batch_size=config.batch_size)
        with torch.no_grad():
            exact = _validate(lambda idx: scorer.score([labels.items[int(i)].path for i in idx]), data)
        result["last_exact"], result["last_exact_datasets"] = exact["val"], exact["val_datasets"]
        _log("last model, deployment path: " + ", ".join(f"{k} {v:.4f}" for k, v in result["last_exact"].items()))
    result["seconds"] = round(time.perf_counter() - started, 1)
    (out / "metrics.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


# --- splits and folds -------------------------------------------------------------------------------
def _summary(results: list[dict[str, Any]]) -> dict[str, Any]:
    summary: dict[str, Any] = {"runs": len(results)}
    for key in ("last_exact", "last", "best"):
        rows = [r.get(key) if key == "last_exact" else (r.get(key) or {}).get("val") for r in results]
        rows = [row for row in rows if row]
        if not rows:
            continue
        summary[key] = {
            metric: {"median": statistics.median(values), "min": min(values), "max": max(values),
                     "values": values}
            for metric in ("srocc", "plcc", "krcc", "rmse")
            for values in [[float(row[metric]) for row in rows]]
        }
    return summary


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else [value]


def run(config: TrainConfig, resume: bool = False) -> dict[str, Any]:
    """Load the label file(s), make the split(s) the config asks for and train each."""
    label_files = [read_labels(path, config.image_root) for path in _as_list(config.data)]
    out = Path(config.out)
    for labels in label_files:
        _log(f"{labels.source}: {len(labels)} images, MOS {labels.mos.min():.2f}..{labels.mos.max():.2f}")
    fractions = [float(f) for f in _as_list(config.val_fraction)]
    dataset_repeats(config.repeat, len(label_files))  # a bad --repeat fails here, before any run folder exists
    if config.folds:
        if len(label_files) > 1:
            raise DatasetError("--folds works with one --data file; with several datasets use --split-seed "
                               "(each dataset gets its own seeded split)")
        n = len(label_files[0])
        splits = kfold_splits(n, config.folds, config.split_seed)
        chosen = [config.fold] if config.fold is not None else list(range(config.folds))
        results = []
        for k in chosen:
            train_idx, val_idx = splits[k]
            _log(f"fold {k + 1}/{config.folds}: {len(train_idx)} train, {len(val_idx)} val")
            fold_config = dataclasses.replace(config, fold=k)
            data = combine(label_files, [(train_idx, val_idx)])
            results.append(train_split(fold_config, data, out / f"fold{k}", resume))
        summary = _summary(results)
        (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        return summary
    data = combine(label_files, seeded_splits(label_files, fractions, config.split_seed))
    for part in data.parts:
        _log(f"{part.mapping.name}: split seed {config.split_seed}: {len(part.train_idx)} train, "
             f"{len(part.val_idx)} val")
    return train_split(config, data, out, resume)
