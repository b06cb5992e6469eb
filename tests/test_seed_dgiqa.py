"""DGIQA seed model: reference layout, golden outputs, shared attention, depth input, ONNX export."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

# The model tests need torch and timm; where they are absent the module is skipped, not an error
# (the torch-free depth-map tests are in test_depth_maps.py).
torch = pytest.importorskip("torch", reason="DGIQA's model tests need torch")
pytest.importorskip("timm", reason="DGIQA's model tests need timm")

import torch.nn.functional as F  # noqa: E402
from timm.models.swin_transformer import WindowAttention  # noqa: E402

from edge_iqa.data.imageio import load_image  # noqa: E402
from edge_iqa.models import get_model_info  # noqa: E402
from edge_iqa.models.depth import DepthFromMap, dgiqa_inputs  # noqa: E402
from edge_iqa.models.dgiqa import DGIQA, SharedWindowAttention, dgiqa  # noqa: E402
from edge_iqa.models.layers import attention as attention_module  # noqa: E402
from edge_iqa.models.layers.attention import MultiHeadAttention, attention_form  # noqa: E402
from tests import golden  # noqa: E402

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
PRISTINE = SHARED / "datasets" / "pristine" / "images"
CASE = golden.golden_cases("dgiqa")[0]
# Swin-T has 2+2+6+2 window-attention blocks, times two backbones, plus Depth-CAR's two.
NUM_ATTENTION_CALLS = 2 * 12 + 2


@pytest.fixture(scope="module")
def golden_model() -> DGIQA:
    """DGIQA with the fixture's deterministic weights, strictly loaded. Do not mutate in tests."""
    return golden.golden_model("dgiqa")


@pytest.fixture(scope="module")
def golden_inputs() -> tuple[torch.Tensor, torch.Tensor]:
    """README section 2: RGB rng(1234) and depth rng(99) repeated to 3 channels, both ImageNet-normalised."""
    rgb = golden.normalise(golden.raw_input(CASE), golden.IMAGENET_MEAN, golden.IMAGENET_STD)
    depth = np.repeat(golden.raw_depth(CASE), 3, axis=1)
    depth = golden.normalise(depth, golden.IMAGENET_MEAN, golden.IMAGENET_STD)
    return torch.from_numpy(rgb), torch.from_numpy(depth)


def _max_diff_to_golden(y: torch.Tensor) -> float:
    return float(np.abs(y.double().numpy().reshape(-1) - golden.golden_output(CASE)).max())


# --- registry and layout ------------------------------------------------------------------------
def test_fed_tensors_match_fixture(golden_inputs: tuple[torch.Tensor, torch.Tensor]) -> None:
    for tensor, expected in zip(golden_inputs, CASE["fed_tensor_summaries"], strict=True):
        golden.assert_fed_tensor_matches(tensor, expected)


def test_registry_entry_follows_the_reference_protocol() -> None:
    info = get_model_info("dgiqa")
    spec = info.preprocess
    assert info.family == "seed" and info.inputs == ("image", "depth")
    assert info.output_range == (0.0, 1.0)
    # single_image_inference.py: SmallestMaxSize(384), ImageNet normalisation, 224x224 crops.
    assert spec.input_size == (224, 224) and spec.resize == "shorter_side" and spec.resize_to == 384
    assert spec.crop == "grid" and spec.num_crops == 9 and spec.interpolation == "bilinear"
    assert spec.normalize and spec.mean == (0.485, 0.456, 0.406) and spec.std == (0.229, 0.224, 0.225)
    boxes = spec.crop_boxes(384, 512)
    assert min(boxes) == (0, 0) and max(boxes) == (384 - 224, 512 - 224)


def test_state_dict_layout_is_the_reference(golden_model: DGIQA) -> None:
    golden.assert_same_state_dict_layout(golden_model, "dgiqa")
    # Non-persistent buffers are derived as timm does, never stored.
    buffers = dict(golden_model.named_buffers())
    index = buffers["backbone.layers_0.blocks.0.attn.relative_position_index"]
    assert index.shape == (49, 49) and index.min() == 0 and index.max() == 168 and index[0, 0] == 84
    mask = buffers["depth_backbone.layers_2.blocks.1.attn_mask"]
    assert mask.shape == (4, 49, 49) and set(mask.unique().tolist()) == {-100.0, 0.0}
    assert golden_model.backbone.get_submodule("layers_3.blocks.1").attn_mask is None  # one 7x7 window: no shift


# --- golden ---------------------------------------------------------------------------------------
def test_golden_output_and_intermediates(
    golden_model: DGIQA, golden_inputs: tuple[torch.Tensor, torch.Tensor]
) -> None:
    """Scores within the fixture's atol; both Swin pyramids (NHWC), Depth-CAR and the dilated stack
    within 1e-4 x RMS of the fixture's summaries (to localise a mismatch)."""
    captured: dict[str, list[torch.Tensor]] = {}

    def keep(name: str):  # noqa: ANN202 - a forward hook; it must return None to leave the output alone
        def hook(_module: torch.nn.Module, _inputs: object, out: torch.Tensor | list[torch.Tensor]) -> None:
            captured.setdefault(name, list(out) if isinstance(out, (list, tuple)) else [out])
        return hook

    summaries = CASE["intermediate_summaries"]["modules"]
    handles = [getattr(golden_model, name).register_forward_hook(keep(name)) for name in summaries]
    try:
        with torch.no_grad():
            y = golden_model(*golden_inputs)
    finally:
        for handle in handles:
            handle.remove()
    assert y.shape == tuple(CASE["output"]["shape"])
    assert _max_diff_to_golden(y) <= golden.output_atol(CASE)
    for name, refs in summaries.items():
        assert len(captured[name]) == len(refs), name
        for tensor, ref in zip(captured[name], refs, strict=True):
            golden.assert_summary_matches(name, tensor, ref)


def test_matmul_softmax_form_matches_golden(
    golden_model: DGIQA, golden_inputs: tuple[torch.Tensor, torch.Tensor]
) -> None:
    with attention_form("matmul_softmax"), torch.no_grad():
        y = golden_model(*golden_inputs)
    assert _max_diff_to_golden(y) <= golden.output_atol(CASE)


def test_fixture_detects_head_perturbation(
    golden_model: DGIQA, golden_inputs: tuple[torch.Tensor, torch.Tensor]
) -> None:
    """The golden comparison can fail: the fixture's fc perturbation moves the output past atol."""
    perturbation = CASE["perturbation"][0]
    assert perturbation["param"] == "fc.weight"
    weight = golden_model.fc.weight
    index = tuple(perturbation["index"])
    original = weight[index].item()
    assert original == np.float32(perturbation["original"])
    try:
        with torch.no_grad():
            weight[index] += perturbation["delta"]
            y = golden_model(*golden_inputs).double().numpy()
    finally:
        with torch.no_grad():
            weight[index] = original  # exact restore: the fixture model is shared by the module
    np.testing.assert_allclose(y, perturbation["output"], atol=golden.output_atol(CASE) / 2, rtol=0)
    assert _max_diff_to_golden(torch.from_numpy(y)) > golden.output_atol(CASE)


def test_depth_input_matters(golden_model: DGIQA, golden_inputs: tuple[torch.Tensor, torch.Tensor]) -> None:
    """The fixture's preprocessing mistakes: swapped depth maps move the scores as in the reference."""
    rgb, depth = golden_inputs
    mistake = next(m for m in CASE["preprocessing_mistake_sensitivity"] if "swapped" in m["what"])
    with torch.no_grad():
        y = golden_model(rgb, depth.flip(0)).double().numpy()
    np.testing.assert_allclose(y, mistake["output"], atol=golden.output_atol(CASE), rtol=0)


# --- attention -------------------------------------------------------------------------------------
def test_every_attention_goes_through_the_shared_module(
    golden_model: DGIQA, golden_inputs: tuple[torch.Tensor, torch.Tensor], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[tuple[int, ...], tuple[int, ...] | None]] = []
    original = attention_module.scaled_dot_product

    def counting(q, k, v, bias=None, scale=None):  # noqa: ANN001, ANN202 - same signature as the original
        calls.append((tuple(k.shape), None if bias is None else tuple(bias.shape)))
        return original(q, k, v, bias=bias, scale=scale)

    sdpa_calls: list[int] = []
    torch_sdpa = F.scaled_dot_product_attention

    def counting_sdpa(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        sdpa_calls.append(1)
        return torch_sdpa(*args, **kwargs)

    monkeypatch.setattr(attention_module, "scaled_dot_product", counting)
    monkeypatch.setattr(F, "scaled_dot_product_attention", counting_sdpa)
    rgb, depth = golden_inputs
    with torch.no_grad():
        golden_model(rgb[:1], depth[:1])
    assert len(calls) == len(sdpa_calls) == NUM_ATTENTION_CALLS
    shapes = Counter(calls)
    # Shifted windows fold the windows into the head axis: (1, windows*heads, 49, 32) + a (1, ., 49, 49) bias.
    assert shapes[((64, 3, 49, 32), (1, 3, 49, 49))] == 2 and shapes[((1, 64 * 3, 49, 32), (1, 192, 49, 49))] == 2
    assert shapes[((4, 12, 49, 32), (1, 12, 49, 49))] == 6 and shapes[((1, 4 * 12, 49, 32), (1, 48, 49, 49))] == 6
    assert shapes[((1, 24, 49, 32), (1, 24, 49, 49))] == 4  # last stage: one window, never shifted
    assert shapes[((1, 16, 49, 60), None)] == 2  # Depth-CAR, E=960, 16 heads
    # In the matmul form nothing reaches torch's SDPA (timm's own fused path included).
    sdpa_calls.clear()
    with attention_form("matmul_softmax"), torch.no_grad():
        golden_model(rgb[:1], depth[:1])
    assert not sdpa_calls
    assert not any(isinstance(m, torch.nn.MultiheadAttention) for m in golden_model.modules())
    assert sum(isinstance(m, MultiHeadAttention) for m in golden_model.modules()) == 2
    assert sum(type(m) is SharedWindowAttention for m in golden_model.modules()) == 24
    assert not any(type(m) is WindowAttention for m in golden_model.modules())


@pytest.mark.parametrize("block_path", ["layers_0.blocks.0", "layers_0.blocks.1", "layers_2.blocks.3"])
@pytest.mark.parametrize("form", ["sdpa", "matmul_softmax"])
def test_window_attention_equals_timm(golden_model: DGIQA, block_path: str, form: str) -> None:
    """Our window attention (windows folded into heads when shifted) = timm's explicit computation."""
    block = golden_model.backbone.get_submodule(block_path)
    attn, mask = block.attn, block.attn_mask
    num_windows = (block.input_resolution[0] // 7) * (block.input_resolution[1] // 7)
    x = torch.randn(2 * num_windows, 49, attn.qkv.in_features, generator=torch.Generator().manual_seed(7))
    fused = attn.fused_attn
    attn.fused_attn = False  # timm's explicit softmax(q k^T * scale + bias + mask) v
    try:
        with torch.no_grad(), attention_form(form):
            ours = attn(x, mask=mask)
            reference = WindowAttention.forward(attn, x, mask=mask)
    finally:
        attn.fused_attn = fused
    assert (mask is None) == block_path.endswith("0")
    torch.testing.assert_close(ours, reference, atol=2e-5, rtol=1e-5)


def test_bilinear_resize_to_7x7_reads_two_by_two_pixels() -> None:
    """Bilinear (align_corners=False, no antialias) s*7 -> 7 = mean of rows/cols s*i + s/2 - 1, s*i + s/2:
    the reference's resize of the TCB maps, and what ONNX Resize(linear, half_pixel) computes."""
    x = torch.randn(2, 5, 56, 56, generator=torch.Generator().manual_seed(3))
    for size in (56, 28, 14):
        fmap = x[:, :, :size, :size]
        stride = size // 7
        first = stride // 2 - 1
        expected = F.avg_pool2d(fmap[:, :, first:, first:], kernel_size=2, stride=stride)[:, :, :7, :7]
        got = F.interpolate(fmap, size=(7, 7), mode="bilinear", align_corners=False)
        torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)


def test_backbone_weights_from_a_timm_checkpoint(tmp_path: Path) -> None:
    from safetensors.torch import save_file
    from timm import create_model as timm_create

    classifier = timm_create("swin_tiny_patch4_window7_224", pretrained=False)
    state = {k: v.contiguous() for k, v in classifier.state_dict().items()}
    save_file(state, str(tmp_path / "swin_t.safetensors"))
    model = dgiqa(backbone_weights=tmp_path / "swin_t.safetensors")
    for backbone in (model.backbone, model.depth_backbone):
        qkv = backbone.layers_2.blocks[5].attn.qkv.weight
        torch.testing.assert_close(qkv, state["layers.2.blocks.5.attn.qkv.weight"], atol=0, rtol=0)
        torch.testing.assert_close(backbone.patch_embed.proj.weight, state["patch_embed.proj.weight"], atol=0, rtol=0)


# --- depth -------------------------------------------------------------------------------------------
def _real_photo() -> np.ndarray:
    files = sorted(PRISTINE.glob("*")) if PRISTINE.is_dir() else []
    if not files:
        pytest.skip(f"pristine photos not found at {PRISTINE} (the shared data folder beside the checkout)")
    return load_image(files[0])


def test_depth_crops_lie_under_the_image_crops(golden_model: DGIQA) -> None:
    """A real photo whose depth map is its own red channel: the depth batch's channel 0 must equal the
    image batch's channel 0 bit for bit (same resize, same 9 crops, same normalisation, 8-bit like the
    reference); then both go through DGIQA."""
    image = _real_photo()
    image = image.copy()
    image[0, 0, 0], image[0, 1, 0] = 0, 255  # the red channel spans 0..255, so min-max is the identity
    spec = get_model_info("dgiqa").preprocess
    rgb, depth = dgiqa_inputs(image, DepthFromMap(image[:, :, 0]), spec)
    assert rgb.shape == depth.shape == (9, 3, 224, 224) and depth.dtype == np.float32
    np.testing.assert_array_equal(depth[:, 0], rgb[:, 0])
    mean, std = np.float32(spec.mean), np.float32(spec.std)
    np.testing.assert_allclose(depth[:, 1] * std[1] + mean[1], depth[:, 0] * std[0] + mean[0], atol=1e-6)
    with torch.no_grad():
        scores = golden_model(torch.from_numpy(rgb[:2]), torch.from_numpy(depth[:2]))
    assert scores.shape == (2,) and torch.isfinite(scores).all() and ((scores > 0) & (scores < 1)).all()


# --- ONNX export -------------------------------------------------------------------------------------
def _export(model: DGIQA, inputs: tuple[torch.Tensor, torch.Tensor], form: str, path: Path,
            dynamic_batch: bool) -> Counter:
    onnx = pytest.importorskip("onnx")
    dynamic = None
    if dynamic_batch:
        batch = torch.export.Dim("batch", min=1, max=64)
        dynamic = {"x_rgb": {0: batch}, "x_depth": {0: batch}}
    with attention_form(form):
        program = torch.onnx.export(model, inputs, dynamo=True, opset_version=23,
                                    input_names=["image", "depth"], output_names=["score"],
                                    dynamic_shapes=dynamic)
    program.save(str(path))
    return Counter(node.op_type for node in onnx.load(str(path), load_external_data=False).graph.node)


def _run_onnx(path: Path, rgb: torch.Tensor, depth: torch.Tensor) -> np.ndarray:
    ort = pytest.importorskip("onnxruntime")
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return session.run(None, {"image": rgb.numpy(), "depth": depth.numpy()})[0]


@pytest.mark.slow  # 25-120 s of export per form on 2 shared cores, plus a 418 MB ONNX file in tmp
@pytest.mark.parametrize("form, expected_attention_nodes", [("sdpa", NUM_ATTENTION_CALLS), ("matmul_softmax", 0)])
def test_onnx_export_matches_pytorch(
    golden_model: DGIQA, golden_inputs: tuple[torch.Tensor, torch.Tensor], tmp_path: Path, form: str,
    expected_attention_nodes: int,
) -> None:
    path = tmp_path / f"dgiqa_{form}.onnx"
    # The SDPA graph is exported with a dynamic batch (the 9 crops of one image form one batch).
    ops = _export(golden_model, golden_inputs, form, path, dynamic_batch=form == "sdpa")
    assert ops["Attention"] == expected_attention_nodes
    assert ops["Softmax"] == (0 if form == "sdpa" else NUM_ATTENTION_CALLS)
    rgb, depth = golden_inputs
    batches = [(rgb, depth)] + ([(rgb[:1], depth[1:])] if form == "sdpa" else [])
    for x, d in batches:
        y = _run_onnx(path, x, d)
        with attention_form(form), torch.no_grad():
            expected = golden_model(x, d).numpy()
        np.testing.assert_allclose(y, expected, atol=1e-4, rtol=0)
    assert _max_diff_to_golden(torch.from_numpy(_run_onnx(path, rgb, depth))) <= 1e-4
