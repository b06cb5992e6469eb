"""``edge-iqa synth``: distort reference photos and label them (transfer or full-reference fallback)."""

from __future__ import annotations

from pathlib import Path

import typer

from edge_iqa.errors import EdgeIQAError


def parse_levels(text: str) -> tuple[int, ...]:
    """``"1-5"``, ``"2,4"`` or ``"1-2,5"`` -> sorted levels."""
    levels: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        low, _, high = part.partition("-")
        try:
            start, stop = int(low), int(high or low)
        except ValueError:
            raise typer.BadParameter(f"{text!r}: use a range like 1-5 or a list like 1,3,5") from None
        levels.update(range(start, stop + 1))
    if not levels or min(levels) < 1 or max(levels) > 5:
        raise typer.BadParameter(f"{text!r}: levels run from 1 to 5")
    return tuple(sorted(levels))


def parse_types(values: list[str] | None) -> tuple[str, ...]:
    from edge_iqa.data.distortions import DISTORTIONS, list_distortions

    if not values:
        return tuple(list_distortions())
    names = [name.strip() for value in values for name in value.split(",") if name.strip()]
    groups = {kind.group for kind in DISTORTIONS.values()}
    chosen: list[str] = []
    for name in names:
        # A group name (blur, noise, ...) stands for all its types.
        expanded = list_distortions(name) if name in groups else [name]
        for item in expanded:
            if item not in DISTORTIONS:
                raise typer.BadParameter(f"unknown distortion {item!r}; choose from {', '.join(list_distortions())} "
                                         f"or a group ({', '.join(sorted(groups))})")
            if item not in chosen:
                chosen.append(item)
    return tuple(chosen)


def synth_command(
    refs: Path = typer.Option(..., "--refs", help="Folder of pristine reference photos."),
    out: Path = typer.Option(..., "--out", help="Output folder: images/ + synth.csv + synth_meta.json."),
    rated: Path = typer.Option(None, "--rated", help="Rated dataset (KADID-10k or TID2013 folder): label by "
                               "quality transfer. Without it labels come from FR metrics + KADID statistics."),
    types: list[str] = typer.Option(None, "--types", help="Distortion names or groups (repeat or comma-separate); "
                                    "default: all 25."),
    levels: str = typer.Option("1-5", "--levels", help="Levels, e.g. 1-5 or 1,3,5."),
    per_ref: int = typer.Option(None, "--per-ref", help="Distorted images per reference (random type/level pairs); "
                                "default: every type x level."),
    seed: int = typer.Option(0, "--seed", help="Seed of the distortions and of --per-ref sampling."),
    max_side: int = typer.Option(512, "--max-side", help="Downscale references whose longer side exceeds this "
                                 "(KADID-10k is 512x384); 0 keeps native size."),
    k: int = typer.Option(3, "--k", help="Transfer: number of nearest rated references."),
    temperature: float = typer.Option(0.05, "--temperature",
                                      help="Transfer: softmax temperature on cosine similarity."),
    backbone_weights: Path = typer.Option(None, "--backbone-weights", help="Transfer: MobileNetV2 ImageNet weights "
                                          "(mobilenet_v2-b0353104.pth) if not found automatically."),
) -> None:
    """Write distorted images and a labelled dataset CSV (image,mos,...) for pre-training."""
    from edge_iqa.data.synth import SynthConfig, generate

    try:
        config = SynthConfig(types=parse_types(types), levels=parse_levels(levels), per_ref=per_ref, seed=seed,
                             max_side=max_side or None, k=k, temperature=temperature)
        csv_path = generate(refs, out, config, rated=rated, backbone_weights=backbone_weights)
    except (EdgeIQAError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    rows = len(csv_path.read_text().splitlines()) - 1
    typer.echo(f"{csv_path}: {rows} labelled images ({'transfer from ' + str(rated) if rated else 'FR fallback'})")
