"""The ``edge-iqa`` command. Verbs are thin wrappers over library functions; each verb lives in
the module that owns its job and is registered here, so this file stays a table of contents."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="edge-iqa",
    help="Train, export, quantize, compile and benchmark image quality assessment models.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)


@app.command("models")
def models_command(family: str = typer.Option(None, help="Only this family: edge or seed.")) -> None:
    """List the registered models with their input protocol."""
    from rich.console import Console
    from rich.table import Table

    from edge_iqa.models import get_model_info, list_models

    table = Table("name", "family", "input", "crops", "trained weights", "description")
    for name in list_models(family):
        info = get_model_info(name)
        spec = info.preprocess
        table.add_row(name, info.family, f"{spec.input_size[0]}x{spec.input_size[1]}", str(spec.num_crops),
                      "embedded" if info.default_weights else "bring your own", info.description)
    Console().print(table)


def _register_verbs() -> None:
    # Each module defines one or more typer commands; importing them here keeps start-up light
    # because the modules themselves import torch/onnx lazily inside the commands.
    from edge_iqa.bundle_cli import build_engine_command, check_command
    from edge_iqa.scoring_cli import score_command

    app.command("score")(score_command)
    app.command("check")(check_command)
    app.command("build-engine")(build_engine_command)
    from edge_iqa.export.cli import export_command, targets_command

    app.command("export")(export_command)
    app.command("targets")(targets_command)
    from edge_iqa.synth_cli import synth_command

    app.command("synth")(synth_command)
    from edge_iqa.train.cli import train_command

    app.command("train")(train_command)
    from edge_iqa.bench.cli import bench_command

    app.command("bench")(bench_command)
    from edge_iqa.collection.cli import report_command

    app.command("report")(report_command)


_register_verbs()

if __name__ == "__main__":
    app()
