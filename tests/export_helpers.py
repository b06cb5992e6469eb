"""Shared, process-cached fixtures of the export tests: one development model and one exported
graph per attention form, so the export test files share a single (slow) trace each."""

from __future__ import annotations

import functools
import os
import tempfile
from pathlib import Path

import torch

from edge_iqa.export.onnx_export import ExportedGraph, export_onnx
from edge_iqa.models import create_model, get_model_info

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
MODEL = "edge_hybrid_n"
# A small input keeps the tests fast; the architecture accepts any size (no position embeddings).
INPUT_SIZE = (128, 128)


@functools.lru_cache(maxsize=1)
def dev_model() -> torch.nn.Module:
    """edge_hybrid_n with the ImageNet backbone (when the shared weights exist) and a seeded random head."""
    torch.manual_seed(0)
    weights = SHARED / "weights"
    if (weights / "mobilenet_v2-b0353104.pth").is_file():
        os.environ.setdefault("EDGE_IQA_WEIGHTS_DIR", str(weights))
        return create_model(MODEL, backbone_weights="imagenet")
    return create_model(MODEL)


def dev_spec():
    return get_model_info(MODEL).preprocess.with_input_size(INPUT_SIZE)


@functools.cache
def exported(form: str) -> ExportedGraph:
    out = Path(tempfile.mkdtemp(prefix=f"edge-iqa-test-{form}-")) / "model.onnx"
    return export_onnx(dev_model(), out, input_names=("image",), input_size=INPUT_SIZE, form=form, max_batch=8)


def first_blocks_only(monkeypatch, count: int) -> None:
    """The real mixed-precision search over the first ``count`` blocks only: seconds, not minutes."""
    from edge_iqa.export import accuracy_control

    every_block = accuracy_control.block_nodes
    monkeypatch.setattr(accuracy_control, "block_nodes",
                        lambda model, kept=frozenset(): dict(list(every_block(model, kept).items())[:count]))
