"""Training on MOS-labelled data: losses, the stem-cache recipe, the loop and ``edge-iqa train``."""

from __future__ import annotations

from typing import Any

__all__ = ["IQALoss", "pairwise_rank_loss", "plcc_loss"]


def __getattr__(name: str) -> Any:
    # Lazy (PEP 562): the CLI imports edge_iqa.cli.train at start-up, and `edge-iqa score --bundle`
    # must run on a machine without torch, so the torch-backed losses load only when asked for.
    if name in __all__:
        from edge_iqa.train import losses

        return getattr(losses, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
