"""``edge-iqa models``: the registered models with their input protocol."""

from __future__ import annotations

import typer


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
