"""The ``edge-iqa`` command: every verb lives in this package, one module per verb group, and is
registered here, so this file is the table of contents of the command line.

    models                    models.py      the model registry                     (torch)
    score                     score.py       one line per image; --out: a collection (collection.py)
    report                    collection.py  a collection table's summary
    check, build-engine       bundle.py      bundle verbs that run where the bundle is deployed
    export, targets           export.py      model -> bundle for a target profile   (torch, onnx, ...)
    train                     train.py       fit a model to MOS labels              (torch)
    synth                     synth.py       distorted + labelled training images   (torch, piq)
    bench                     bench.py       the benchmark suite                    (torch, bench)

The verb modules import their heavy libraries inside the commands, so ``edge-iqa score --bundle``
runs with only ``pip install edge-iqa onnxruntime``; a verb whose optional dependency is missing
ends in one line naming the ``pip install`` that brings it (:mod:`edge_iqa.cli.extras`).
"""

from __future__ import annotations

import typer

from edge_iqa.cli.extras import needs_extras

app = typer.Typer(
    name="edge-iqa",
    help="Train, export, quantize, compile and benchmark image quality assessment models.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)


def _register_verbs() -> None:
    from edge_iqa.cli.bench import bench_command
    from edge_iqa.cli.bundle import build_engine_command, check_command
    from edge_iqa.cli.collection import report_command
    from edge_iqa.cli.export import export_command, targets_command
    from edge_iqa.cli.models import models_command
    from edge_iqa.cli.score import score_command
    from edge_iqa.cli.synth import synth_command
    from edge_iqa.cli.train import train_command

    verbs = {"models": models_command, "score": score_command, "check": check_command,
             "build-engine": build_engine_command, "export": export_command, "targets": targets_command,
             "synth": synth_command, "train": train_command, "bench": bench_command, "report": report_command}
    for name, command in verbs.items():
        app.command(name)(needs_extras(name, command))


_register_verbs()

if __name__ == "__main__":
    app()
