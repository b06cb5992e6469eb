"""``edge-iqa score``: one line per image; a bad file is reported and the others still scored."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from edge_iqa.errors import EdgeIQAError


def score_command(
    images: list[Path] = typer.Argument(..., help="Image files to score."),
    model: str = typer.Option("edge_hybrid_n", help="Registered model name (see `edge-iqa models`)."),
    checkpoint: Path = typer.Option(None, help="Checkpoint (.safetensors + .json, or a .pth state dict)."),
    bundle: Path = typer.Option(None, help="Score with an exported bundle through the torch-free runtime."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line instead of text."),
) -> None:
    """Print one quality score per image (MOS scale of the training set; higher is better)."""
    try:
        if bundle is not None:
            from edge_iqa.runtime import load

            scorer = load(bundle)
        else:
            from edge_iqa.predict import TorchScorer

            scorer = TorchScorer.from_name(model, checkpoint)
    except EdgeIQAError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    failures = 0
    for path in images:
        try:
            value = float(scorer.score([path])[0])
        except EdgeIQAError as exc:
            failures += 1
            line = json.dumps({"image": str(path), "error": str(exc), "type": type(exc).__name__}) if as_json \
                else f"{path}\terror: {exc}"
            print(line, file=sys.stderr if not as_json else sys.stdout)
            continue
        print(json.dumps({"image": str(path), "score": round(value, 4)}) if as_json else f"{path}\t{value:.2f}")
    if failures:
        raise typer.Exit(1)
