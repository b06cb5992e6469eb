"""``edge-iqa train``: fit a registered model to a MOS-labelled dataset (see docs/training.md)."""

from __future__ import annotations

from pathlib import Path

import typer

from edge_iqa.errors import EdgeIQAError


def train_command(
    data: list[Path] = typer.Option(..., help="Dataset CSV (columns image,mos; paths relative to it), a BIQ2021 CSV "
                                    "or a pyiqa meta file. Repeat for several datasets (each split, normalised "
                                    "and ranked on its own; the model then scores 0-100, higher is better)."),
    out: Path = typer.Option(..., help="Run folder: best/last checkpoints, state.pt, metrics.json."),
    model: str = typer.Option("edge_hybrid_n", help="Registered model name (see `edge-iqa models`)."),
    image_root: Path = typer.Option(None, help="Folder the image paths are relative to (default: the CSV's)."),
    recipe: str = typer.Option("auto", help="auto | stem-cache (frozen cached stem, CPU-friendly) | full."),
    epochs: int = typer.Option(8, min=1),
    batch_size: int = typer.Option(16, min=2),
    lr: float = typer.Option(5e-4, help="Peak learning rate of the head (AdamW, warm-up + cosine)."),
    backbone_lr_mult: float = typer.Option(0.2, help="Backbone learning rate = lr x this."),
    weight_decay: float = typer.Option(0.05),
    warmup_epochs: float = typer.Option(1.0),
    crop: int = typer.Option(256, help="Training crop in px (a multiple of 8 for stem-cache)."),
    freeze_through: int = typer.Option(13, help="stem-cache: backbone blocks 0..N stay at ImageNet weights (6..16)."),
    loss_l1: float = typer.Option(1.0, help="Weight of the L1 term."),
    loss_mse: float = typer.Option(0.0, help="Weight of the MSE term."),
    loss_plcc: float = typer.Option(1.0, help="Weight of the (1 - PLCC)/2 term."),
    loss_rank: float = typer.Option(1.0, help="Weight of the pairwise rank hinge."),
    seed: int = typer.Option(0, help="Initialisation, crops, flips, batch order."),
    split_seed: int = typer.Option(0, help="Which random train/val split (or fold assignment)."),
    val_fraction: list[float] = typer.Option([0.2], help="Held-out fraction; 0 trains on everything. One for all "
                                             "datasets, or one per --data in the same order."),
    repeat: list[int] = typer.Option([1], help="Passes over each dataset's training images per epoch (>= 1): one "
                                     "for all, or one per --data in the same order (a small dataset's share of "
                                     "the steps)."),
    folds: int = typer.Option(0, help="k-fold cross-validation instead of one split (0: off)."),
    fold: int = typer.Option(None, help="Run only this fold (0-based) of --folds."),
    device: str = typer.Option("auto", help="auto (CUDA when present), cpu, cuda, cuda:1, ..."),
    amp: bool = typer.Option(True, help="Mixed precision on CUDA."),
    threads: int = typer.Option(0, help="torch CPU threads (0: torch's default)."),
    workers: int = typer.Option(0, help="DataLoader workers (full recipe)."),
    cache_dir: Path = typer.Option(Path("runs/stem_cache"), help="Where the stem-cache recipe keeps features."),
    cache_views: int = typer.Option(2, min=1, max=2, help="stem-cache: 2 caches image + mirror (flip "
                                    "augmentation), 1 the image only (half the memory, for large sets)."),
    exact_eval: bool = typer.Option(True, help="Re-score the val set through the deployment path at the end."),
    backbone_weights: str = typer.Option("imagenet", help="ImageNet backbone file, or 'imagenet' to find it."),
    max_steps: int = typer.Option(None, help="Stop after this many optimiser steps (smoke tests)."),
    resume: bool = typer.Option(False, help="Continue the run in --out from its state.pt."),
    init: Path = typer.Option(None, help="Start from this edge-iqa checkpoint (NAME.safetensors + NAME.json of "
                              "the same model, e.g. a pre-training run's best.safetensors) instead of ImageNet."),
    int8_noise: float = typer.Option(0.0, min=0.0, help="Weight of a term that keeps scores unchanged under "
                                     "simulated INT8 rounding noise (a second, noisy forward pass; 0: off). "
                                     "Makes INT8 builds score single photos closer to FP32 (docs/training.md)."),
    int8_noise_target: str = typer.Option("cpu", help="Target profile whose keep_fp layers get no INT8 noise."),
) -> None:
    """Train on real MOS data; saves best + last checkpoints and metrics.json."""
    from edge_iqa.train.loop import TrainConfig, run

    config = TrainConfig(
        model=model, data=[str(d) for d in data] if len(data) > 1 else str(data[0]), out=str(out),
        image_root=str(image_root) if image_root else None,
        recipe=recipe, epochs=epochs, batch_size=batch_size, lr=lr, backbone_lr_mult=backbone_lr_mult,
        weight_decay=weight_decay, warmup_epochs=warmup_epochs, crop=crop, freeze_through=freeze_through,
        loss={"l1": loss_l1, "mse": loss_mse, "plcc": loss_plcc, "rank": loss_rank},
        seed=seed, split_seed=split_seed,
        val_fraction=list(val_fraction) if len(val_fraction) > 1 else val_fraction[0], folds=folds, fold=fold,
        repeat=list(repeat) if len(repeat) > 1 else repeat[0],
        device=device, amp=amp, threads=threads, workers=workers, cache_dir=str(cache_dir) if cache_dir else None,
        cache_views=cache_views,
        exact_eval=exact_eval, backbone_weights=backbone_weights, max_steps=max_steps,
        init=str(init) if init else None, int8_noise=int8_noise, int8_noise_target=int8_noise_target,
    )
    try:
        run(config, resume=resume)
    except EdgeIQAError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
