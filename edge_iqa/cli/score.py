"""``edge-iqa score``: one line per image, in order; a bad file is reported and the others still scored."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import typer

from edge_iqa.errors import EdgeIQAError

DEFAULT_MODEL = "edge_hybrid_n"


def score_command(
    images: list[Path] = typer.Argument(..., help="Image files to score (with --out: also folders, globs, "
                                       "lists)."),
    model: str = typer.Option(None, help="Registered model name (see `edge-iqa models`; default edge_hybrid_n); "
                              "with --checkpoint, the model a foreign .pth state dict holds."),
    checkpoint: Path = typer.Option(None, help="Checkpoint (.safetensors + .json, or a .pth state dict)."),
    bundle: Path = typer.Option(None, help="Score with an exported bundle through the torch-free runtime."),
    depth: list[Path] = typer.Option(None, "--depth", help="Image + depth bundles (DGIQA): the depth map of each "
                                     "image (16/8-bit gray PNG, float TIFF), one --depth per image, in order."),
    depth_model: Path = typer.Option(None, "--depth-model", help="Image + depth bundles (DGIQA): an ONNX depth "
                                     "network (e.g. your Depth Anything export; edge-iqa ships none) run on each "
                                     "image, on the bundle's runtime."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line instead of text."),
    out: Path = typer.Option(None, "--out", help="Score a collection into this Parquet table, resumably (rerun "
                             "to resume); INPUTs may then also be folders, globs and .txt/.csv/.parquet lists."),
    engine: str = typer.Option("local", help="With --out: local (threads) or ray (Ray Data; edge-iqa[scale])."),
    address: str = typer.Option(None, help="With --engine ray: auto or ray://HOST:PORT (default: a local Ray)."),
    workers: int = typer.Option(None, help="With --out: scoring threads (local) or Ray actors (ray)."),
    threads_per_worker: int = typer.Option(None, help="With --out: backend threads per worker."),
    batch_size: int = typer.Option(8, help="With --out: images per Scorer call."),
    shard_size: int = typer.Option(1000, help="With --out: rows per shard (a killed job loses at most one)."),
    bundle_transfer: str = typer.Option("auto", help="With --engine ray: path, object-store or auto (path "
                                        "without --address, else object-store)."),
    stall_timeout: float = typer.Option(None, help="With --out: stop with an error when no batch was scored for "
                                        "this many seconds (default 600; the rows so far are kept: rerun to resume)."),
) -> None:
    """Print one quality score per image (MOS scale of the training set; higher is better), or score a
    collection into a resumable Parquet table with --out."""
    if out is not None:
        if depth or depth_model is not None or as_json or checkpoint is not None:
            _fail("--out scores single-input bundles into a table; drop --depth, --depth-model, --json and "
                  "--checkpoint")
        from edge_iqa.cli.collection import score_collection

        raise typer.Exit(score_collection([str(i) for i in images], out, _source(bundle, model), engine=engine,
                                          address=address,
                                          workers=workers, threads_per_worker=threads_per_worker,
                                          batch_size=batch_size, shard_size=shard_size,
                                          bundle_transfer=bundle_transfer, stall_timeout=stall_timeout))
    if engine != "local" or address is not None or workers is not None or threads_per_worker is not None:
        _fail("--engine, --address, --workers and --threads-per-worker score a collection into a table: add "
              "--out scores.parquet")
    depth = depth or []
    try:
        _check_depth_options(images, bundle, depth, depth_model)
        if bundle is not None:
            from edge_iqa.runtime import load

            scorer = load(bundle, depth_model=depth_model)
            if depth and not scorer.needs_depth:
                _fail(f"{bundle} has one input ({scorer.inputs[0]!r}) and takes no depth; drop --depth")
            if scorer.needs_depth and not depth and scorer.depth is None:
                _fail(f"{bundle} scores an image together with its depth (inputs {list(scorer.inputs)}): pass "
                      "--depth MAP once per image, in order, or --depth-model MODEL.onnx (edge-iqa ships no "
                      "depth weights; export your own, e.g. Depth Anything)")
        else:  # the torch backend: the checkpoint (its JSON names the model) or the model's embedded weights
            from edge_iqa.runtime import load

            scorer = load(checkpoint, model=model) if checkpoint is not None else load(_source(None, model))
    except EdgeIQAError as exc:
        _fail(str(exc), exc)
    failures = 0
    try:
        for path, value, error in _scored(scorer, images, depth):
            if error is not None:
                failures += 1
                line = json.dumps({"image": str(path), "error": str(error), "type": type(error).__name__}) \
                    if as_json else f"{path}\terror: {error}"
                print(line, file=sys.stderr if not as_json else sys.stdout)
                continue
            print(json.dumps({"image": str(path), "score": round(value, 4)}) if as_json else f"{path}\t{value:.2f}")
    except EdgeIQAError as exc:  # not one image's fault (a broken bundle): nothing more can be scored
        _fail(str(exc), exc)
    if failures:
        raise typer.Exit(1)


#: Files scored per list call: the runtime's list path (read-ahead, one image per stream) without
#: holding the whole command line's scores back until the last file.
CHUNK = 32


def _scored(scorer: Any, images: list[Path], depth: list[Path]) -> Iterator[tuple[Path, float, Exception | None]]:
    """(path, score, error) per image, in order. Without depth maps, CHUNK images at a time through
    ``Scorer.score_each`` (a bad file is its own error; the others score exactly as one by one);
    with them, one image per call, each with its map."""
    if depth:
        for path, depth_map in zip(images, depth, strict=True):
            try:
                yield path, float(scorer.score([path], depth=[depth_map])[0]), None
            except EdgeIQAError as exc:
                yield path, math.nan, exc
        return
    for start in range(0, len(images), CHUNK):
        chunk = images[start : start + CHUNK]
        scores, errors = scorer.score_each(chunk)
        yield from zip(chunk, (float(v) for v in scores), errors, strict=True)


def _source(bundle: Path | None, model: str | None) -> Path | str:
    """What ``runtime.load`` scores with when no checkpoint is given, for single images and for
    collections alike: the bundle, else the model by name (default edge_hybrid_n), which ``load``
    resolves (its embedded weights on the torch backend)."""
    return bundle if bundle is not None else (model or DEFAULT_MODEL)


def _check_depth_options(images: list[Path], bundle: Path | None, depth: list[Path],
                         depth_model: Path | None) -> None:
    if (depth or depth_model is not None) and bundle is None:
        _fail("--depth and --depth-model are for image + depth bundles: add --bundle BUNDLE")
    if depth and depth_model is not None:
        _fail("pass --depth (one map per image) or --depth-model (an ONNX depth network), not both")
    if depth and len(depth) != len(images):
        _fail(f"got {len(depth)} --depth maps for {len(images)} images; pass exactly one --depth per image, "
              "in the same order as the images")


def _fail(message: str, cause: BaseException | None = None) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2) from cause
