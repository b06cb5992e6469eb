"""Export, quantize and compile edge-iqa models into bundles (``edge_iqa.export``).

``export_bundle`` (``edge_iqa.export.pipeline``) is the entry point; ``targets`` loads the TOML
target profiles; one module per step and per backend (see docs/export.md). Submodules import
torch/onnx/openvino lazily so ``import edge_iqa.export`` stays light.
"""

from __future__ import annotations

from typing import Any

__all__ = ["export_bundle", "list_targets", "load_target"]


def __getattr__(name: str) -> Any:
    if name == "export_bundle":
        from edge_iqa.export.pipeline import export_bundle

        return export_bundle
    if name in ("list_targets", "load_target"):
        from edge_iqa.export import targets

        return getattr(targets, name)
    raise AttributeError(name)
