"""``python -m edge_iqa.cli``: the ``edge-iqa`` command."""

from edge_iqa.cli import app

app()
