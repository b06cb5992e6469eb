"""Shared, process-cached fixtures of the export tests: one development model and one exported
graph per attention form, so the export test files share a single (slow) trace each."""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
from pathlib import Path

import torch

from edge_iqa.export.onnx_export import ExportedGraph, export_onnx
from edge_iqa.export.staging import artifact_document, load_artifact
from edge_iqa.models import create_model, get_model_info

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
MODEL = "edge_hybrid_n"
# A small input keeps the tests fast; the architecture accepts any size (no position embeddings).
INPUT_SIZE = (128, 128)
#: Targets whose profiles fine-tune the INT8 network (minutes on the default model): tests shorten it.
FINE_TUNED_TARGETS = ("cpu", "onnxruntime")


def fine_tuning_steps(target: str, steps: int) -> str:
    """The ``[quantization]`` line that sets a fine-tuning target's ``qat_steps`` ('' for the others)."""
    return f"qat_steps = {steps}\n" if target in FINE_TUNED_TARGETS else ""


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
def exported(form: str, pixels: bool = False) -> ExportedGraph:
    """The dev model's graph in attention ``form``; with ``pixels``, taking uint8 pixels (schema 2)."""
    out = Path(tempfile.mkdtemp(prefix=f"edge-iqa-test-{form}-")) / "model.onnx"
    return export_onnx(dev_model(), out, input_names=("image",), input_size=INPUT_SIZE, form=form, max_batch=8,
                       pixel_spec=dev_spec() if pixels else None)


def artifact_scorer(model_path: Path, folder: Path, runtime: str = "onnxruntime", precision: str = "fp32",
                    io: dict | None = None):
    """``runtime.load`` of one built artifact of the dev model (copied, with its siblings of the same
    stem such as an OpenVINO ``.bin``, into ``folder``): the export's own way of scoring an
    artifact (:func:`edge_iqa.export.staging.load_artifact`). ``io``: the graph's (default float rows)."""
    folder.mkdir(parents=True, exist_ok=True)
    for sibling in model_path.parent.glob(f"{model_path.stem}.*"):
        shutil.copyfile(sibling, folder / sibling.name)
    io = io or {"inputs": [{"name": "image", "shape": [-1, 3, *INPUT_SIZE], "dtype": "float32"}], "output": "score"}
    return load_artifact(folder / model_path.name,
                         artifact_document(runtime, precision, model_path.name, io, dev_spec(), model_name=MODEL))


def first_blocks_only(monkeypatch, count: int) -> None:
    """The real mixed-precision search over the first ``count`` blocks only: seconds, not minutes."""
    from edge_iqa.export import accuracy_control

    every_block = accuracy_control.block_nodes
    monkeypatch.setattr(accuracy_control, "block_nodes",
                        lambda model, kept=frozenset(): dict(list(every_block(model, kept).items())[:count]))


def assert_scores_as_measured(bundle: Path, profile: Path) -> None:
    """The exported dev-model bundle scores its validation photos through ``runtime.load`` as the
    export measured them (the manifest's max |diff| against PyTorch)."""
    import numpy as np
    import pytest

    from edge_iqa.export import calibration
    from edge_iqa.export.parity import raw_scores, reference_scorer
    from edge_iqa.export.staging import load_staged
    from edge_iqa.export.targets import load_target
    from edge_iqa.runtime.bundle import read_manifest

    manifest = read_manifest(bundle)
    photos = calibration.profile_split(load_target(profile)).validation[: manifest["accuracy"]["images"]]
    scores = raw_scores(load_staged(bundle), calibration.prepare_images(photos, dev_spec()))
    reference = raw_scores(reference_scorer(dev_model(), dev_spec(), ("image",)),
                           calibration.prepare_images(photos, dev_spec()))
    assert np.max(np.abs(scores - reference)) == pytest.approx(manifest["accuracy"]["max_abs_diff"], rel=1e-3, abs=1e-6)
