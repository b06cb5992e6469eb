"""The seed models through the real export pipeline, with the golden deterministic weights.

For each seed model: ``export_bundle`` writes a cpu/onnxruntime bundle whose network scores a real
photo like the PyTorch model through the torch-free runtime (``edge_iqa.runtime.load``; for DGIQA,
two inputs, with a depth map per image as firmware passes it), and a jetson bundle (MatMul-Softmax
attention, opset 18) passes ``edge-iqa check``. TOPIQ-224 runs in CI; the larger models (GlintIQA
25 crops, DGIQA 2x Swin-T, LoDa ViT-B, TOPIQ at 384/512) are ``slow``.

Profiles are small user profiles (``inherits`` the shipped target, few calibration and parity
images) and ``accuracy_gate=False``: SROCC against MOS means nothing for deterministic weights.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from typer.testing import CliRunner

from edge_iqa.calibration_data import data_dir, read_manifest
from edge_iqa.cli import app
from edge_iqa.data.imageio import load_image
from edge_iqa.export.calibration import stand_in_depth
from edge_iqa.export.pipeline import export_bundle, load_model_for_export
from edge_iqa.models import create_model, get_model_info
from edge_iqa.models.checkpoint import load_into, save_checkpoint
from edge_iqa.runtime import load
from edge_iqa.runtime.bundle import read_manifest as read_bundle_manifest
from tests.export_helpers import fine_tuning_steps
from tests.golden import deterministic_state_dict

GOLDEN_KEYS = {"topiq_nr_224": "topiq_nr", "topiq_nr_384": "topiq_nr", "topiq_nr": "topiq_nr"}
# Held-out photos (the small profiles calibrate on the first few of the seeded permutation; these
# are picked from the end of the shipped list, which is what a user would score).
PHOTO_INDICES = (-1, -2)


def golden_checkpoint(model_name: str, out_dir: Path) -> Path:
    with torch.no_grad():
        model = create_model(model_name)
        load_into(model, deterministic_state_dict(GOLDEN_KEYS.get(model_name, model_name)), "golden weights")
    return save_checkpoint(model, out_dir / f"{model_name}.safetensors", model_name=model_name,
                           preprocess=get_model_info(model_name).preprocess)


def small_profile(tmp: Path, target: str, calibration: int = 2) -> Path:
    path = tmp / f"small-{target}.toml"
    # No fine-tuning of the seed models' INT8 (ResNet-50 / ViT backbones: long on a CPU); the post-training path.
    steps = fine_tuning_steps(target, 0)
    path.write_text(f'inherits = "{target}"\nname = "small-{target}"\n[quantization]\n'
                    f"calibration_samples = {calibration}\n{steps}[parity]\nimages = 4\naccuracy_images = 8\n")
    return path


def photos() -> list[np.ndarray]:
    rows = read_manifest()
    return [load_image(data_dir() / rows[i].file) for i in PHOTO_INDICES]


def torch_scores(model_name: str, checkpoint: Path, images: list[np.ndarray]) -> np.ndarray:
    """What the PyTorch model says, crops averaged, with the bundle's preprocessing (single-input models)."""
    model, spec, _, _ = load_model_for_export(model_name, checkpoint)
    if hook := get_model_info(model_name).extra.get("fixed_size_hook"):
        getattr(model, hook)(*spec.input_size)
    scores = []
    with torch.inference_mode():
        for image in images:
            crops = spec.apply(image)
            scores.append(model.eval()(torch.from_numpy(crops)).reshape(-1).double().mean().item())
    return np.array(scores)


def bundle_scores(bundle: Path, images: list[np.ndarray]) -> np.ndarray:
    """The torch-free runtime; a two-input (DGIQA) bundle gets one depth map per image, as firmware
    passes it (the runtime makes the depth crops under the image crops)."""
    with load(bundle, threads=2) as scorer:
        if scorer.needs_depth:
            return scorer.score(images, depth=[stand_in_depth(image) for image in images])
        return scorer.score(images)


def check_exports(model_name: str, tmp: Path, cpu_target: str, jetson_precision: str) -> None:
    checkpoint = golden_checkpoint(model_name, tmp)
    images = photos()
    bundle = export_bundle(model_name, small_profile(tmp, cpu_target), "fp32", checkpoint, tmp / "cpu",
                           accuracy_gate=False, quiet=True)
    manifest = read_bundle_manifest(bundle)
    graph = manifest["graph"]
    assert graph["fused_attention_ops"] == graph["attention_calls"] > 0
    assert manifest["parity"]["onnx_fp32_vs_torch"]["passed"]
    assert manifest["model"]["weights"]["source"] == checkpoint.name
    inputs = [i["name"] for i in manifest["io"]["inputs"]]
    assert inputs == list(get_model_info(model_name).inputs)
    if len(inputs) == 1:
        expected = torch_scores(model_name, checkpoint, images)
        np.testing.assert_allclose(bundle_scores(bundle, images), expected, rtol=0, atol=1e-4)
    else:  # DGIQA: the PyTorch reference on the same 8-bit depth crops the runtime feeds
        model, spec, _, _ = load_model_for_export(model_name, checkpoint)
        from edge_iqa.models.depth import DepthFromMap, dgiqa_inputs

        expected = []
        with torch.inference_mode():
            for image in images:
                rgb, depth = dgiqa_inputs(image, DepthFromMap(stand_in_depth(image)), spec)
                expected.append(model.eval()(torch.from_numpy(rgb), torch.from_numpy(depth)).double().mean().item())
        np.testing.assert_allclose(bundle_scores(bundle, images), expected, rtol=0, atol=1e-4)

    jetson = export_bundle(model_name, small_profile(tmp, "jetson"), jetson_precision, checkpoint, tmp / "jetson",
                           accuracy_gate=False, quiet=True)
    proto = onnx.load(str(jetson / "model.onnx"), load_external_data=False)
    ops = {node.op_type for node in proto.graph.node}
    assert "Attention" not in ops and "Gelu" not in ops and "Softmax" in ops
    # Exported at opset 18; modelopt's Q/DQ insertion may raise the default domain to 19. TensorRT 10.3
    # parses 9..20 (the check below enforces it); GELU is the Erf form, not the opset-20 Gelu op.
    assert {o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")} <= {18, 19}
    assert read_bundle_manifest(jetson)["graph"]["opset"] == 18
    result = CliRunner().invoke(app, ["check", str(jetson)])
    assert result.exit_code == 0, result.output
    assert "TensorRT 10.3 graph check passed" in result.output


def test_topiq_224_exports_score_like_pytorch_and_pass_the_jetson_check(tmp_path: Path) -> None:
    torch.set_num_threads(2)
    check_exports("topiq_nr_224", tmp_path, "onnxruntime", "fp16")


@pytest.mark.slow
@pytest.mark.parametrize(("model_name", "cpu_target"), [
    ("glintiqa", "cpu"), ("dgiqa", "onnxruntime"), ("loda", "cpu"), ("topiq_nr_384", "cpu"), ("topiq_nr", "cpu"),
])
def test_seed_model_exports_score_like_pytorch_and_int8_passes_the_jetson_check(
        model_name: str, cpu_target: str, tmp_path: Path) -> None:
    torch.set_num_threads(2)
    check_exports(model_name, tmp_path, cpu_target, "int8")


class _Gelu(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.gelu(x)


@pytest.mark.parametrize(("opset", "op"), [(18, "Erf"), (23, "Gelu")])
def test_gelu_exports_exactly_at_the_jetson_and_cpu_opsets(opset: int, op: str, tmp_path: Path) -> None:
    """Every seed model uses exact (erf) GELU. TensorRT 10.3 does not parse the opset-20 ``Gelu`` op;
    at the jetson opset (18) the exporter writes 0.5 * x * (1 + Erf(x / sqrt 2)), the same function."""
    import io
    from contextlib import redirect_stdout

    import onnxruntime as ort

    path = tmp_path / f"gelu{opset}.onnx"
    x = torch.linspace(-12, 12, 4097).reshape(1, -1)
    with redirect_stdout(io.StringIO()):
        torch.onnx.export(_Gelu().eval(), (x,), str(path), dynamo=True, opset_version=opset, input_names=["x"])
    ops = {node.op_type for node in onnx.load(str(path)).graph.node}
    assert op in ops and ({"Gelu", "Erf"} - {op}).isdisjoint(ops)
    out = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x.numpy()})[0]
    np.testing.assert_allclose(out, torch.nn.functional.gelu(x).numpy(), rtol=0, atol=1e-6)


@pytest.mark.parametrize("model_name", ["glintiqa", "loda", "dgiqa", "topiq_nr"])
def test_runtime_load_check_accepts_the_seed_protocols(model_name: str) -> None:
    """The runtime preprocesses a probe image when it loads a bundle; GlintIQA and LoDa crop 224x224
    windows without resizing, so the probe must be at least that large (it was 48x64, which made
    every GlintIQA/LoDa bundle fail to load)."""
    from edge_iqa.runtime.scorer import _dry_run

    _dry_run(get_model_info(model_name).preprocess)
