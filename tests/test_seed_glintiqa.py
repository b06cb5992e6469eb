"""GlintIQA: reference layout, golden outputs, shared attention, preprocessing and ONNX export."""

from __future__ import annotations

import collections
from pathlib import Path

import numpy as np
import pytest
import torch

import edge_iqa.models  # noqa: F401  registers every architecture
from edge_iqa.data.imageio import load_image
from edge_iqa.models import create_model, get_model_info
from edge_iqa.models.glintiqa import (
    ChannelWiseSelfAttention,
    GlintIQA,
    convert_legacy_state_dict,
)
from edge_iqa.models.layers.attention import attention_form
from tests import golden as G

MODEL = "glintiqa"
SHARED = Path(__file__).resolve().parents[1].parent / "shared"
ATTENTION_CALLS = 10 + 5  # ViT blocks 0..9 and the five CWSAs
PROBED = ("vgfe", "clfe", "local_projection", "siem4")


@pytest.fixture(scope="module")
def case() -> dict:
    return G.golden_cases(MODEL)[0]


@pytest.fixture(scope="module")
def reference_state() -> dict[str, torch.Tensor]:
    """The reference state_dict filled by the fixture's deterministic rule (built once: ~45M values)."""
    return G.deterministic_state_dict(MODEL)


@pytest.fixture(scope="module")
def model(reference_state: dict[str, torch.Tensor]) -> GlintIQA:
    net = GlintIQA().eval()
    net.load_state_dict(reference_state, strict=True)
    return net


@pytest.fixture(scope="module")
def fed(case: dict) -> torch.Tensor:
    """The golden input normalised with mean = std = 0.5 (glintiqa/data/transforms.py)."""
    mean = np.full((1, 3, 1, 1), 0.5, dtype=np.float32)
    return torch.from_numpy(G.normalise(G.raw_input(case), mean, mean))


@pytest.fixture(scope="module")
def run(model: GlintIQA, fed: torch.Tensor) -> tuple[torch.Tensor, dict[str, tuple[torch.Tensor, ...]]]:
    """One forward of the golden batch with the probed submodules' outputs recorded."""
    captured: dict[str, tuple[torch.Tensor, ...]] = {}

    def recorder(name: str):
        def hook(_module: torch.nn.Module, _inputs: tuple, out: torch.Tensor | tuple) -> None:
            captured[name] = out if isinstance(out, tuple) else (out,)

        return hook

    handles = [getattr(model, name).register_forward_hook(recorder(name)) for name in PROBED]
    try:
        with torch.no_grad():
            out = model(fed)
    finally:
        for handle in handles:
            handle.remove()
    return out, captured


def test_registered_as_seed_with_the_25_crop_protocol() -> None:
    info = get_model_info(MODEL)
    spec = info.preprocess
    assert info.family == "seed"
    assert spec.input_size == (224, 224)
    assert (spec.resize, spec.crop, spec.grid, spec.num_crops) == ("none", "grid", (5, 5), 25)
    assert spec.mean == spec.std == (0.5, 0.5, 0.5) and spec.normalize


def test_state_dict_layout_is_the_reference() -> None:
    G.assert_same_state_dict_layout(GlintIQA(), MODEL)


def test_fed_tensor_is_the_reference_input(case: dict, fed: torch.Tensor) -> None:
    ref = case["fed_tensor_summaries"][0]
    assert list(fed.shape) == ref["shape"]
    assert fed.double().sum().item() == pytest.approx(ref["sum"], rel=1e-9)
    np.testing.assert_allclose(fed.flatten()[:4].numpy(), ref["first4"], rtol=0, atol=1e-7)


def test_golden_output(case: dict, run: tuple) -> None:
    out, _ = run
    assert out.shape == (2,)
    diff = np.abs(out.double().numpy() - G.golden_output(case)).max()
    assert diff <= G.output_atol(case), f"max abs diff {diff:.3g} > {G.output_atol(case)}"


def test_golden_intermediate_summaries(case: dict, run: tuple) -> None:
    _, captured = run
    for name, references in case["intermediate_summaries"]["modules"].items():
        if name not in PROBED:
            continue
        assert len(captured[name]) == len(references), name
        for index, (tensor, ref) in enumerate(zip(captured[name], references, strict=True)):
            t = tensor.double()
            rms = (ref["mean"] ** 2 + ref["std"] ** 2) ** 0.5
            assert list(t.shape) == ref["shape"], (name, index)
            got = (t.mean().item(), t.std(unbiased=False).item(), t.abs().max().item())
            want = (ref["mean"], ref["std"], ref["absmax"])
            assert np.abs(np.subtract(got, want)).max() <= 1e-4 * rms, (name, index, got, want)
            np.testing.assert_allclose(t.flatten()[:4].numpy(), ref["first4"], rtol=0, atol=1e-4 * rms)


def test_golden_output_with_explicit_matmul_softmax(case: dict, model: GlintIQA, fed: torch.Tensor) -> None:
    with attention_form("matmul_softmax"), torch.no_grad():
        out = model(fed)
    assert np.abs(out.double().numpy() - G.golden_output(case)).max() <= G.output_atol(case)


def test_every_attention_goes_through_the_shared_module(
    model: GlintIQA, fed: torch.Tensor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In the "sdpa" form each attention is one SDPA call, and no other softmax runs."""
    counts = collections.Counter()
    sdpa = torch.nn.functional.scaled_dot_product_attention
    softmax = torch.Tensor.softmax

    def counting_sdpa(*args, **kwargs):
        counts["sdpa"] += 1
        return sdpa(*args, **kwargs)

    def counting_softmax(self, *args, **kwargs):
        counts["softmax"] += 1
        return softmax(self, *args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", counting_sdpa)
    monkeypatch.setattr(torch.Tensor, "softmax", counting_softmax)
    with torch.no_grad():
        model(fed[:1])
    assert counts == {"sdpa": ATTENTION_CALLS}


def test_cwsa_matches_the_reference_formula() -> None:
    """Cosine channel attention with scale dim**-0.5, read back by transpose+reshape (not a transpose)."""
    torch.manual_seed(0)
    # float64: the near-uniform softmax followed by LayerNorm amplifies float32 rounding to ~1e-5.
    cwsa = ChannelWiseSelfAttention(dim=196).eval().double()
    x = torch.randn(2, 768, 196, dtype=torch.float64)
    with torch.no_grad():
        q = torch.nn.functional.normalize(cwsa.c_q(x), dim=-1)
        k = torch.nn.functional.normalize(cwsa.c_k(x), dim=-1)
        attn = (q @ k.transpose(-2, -1) * 196**-0.5).softmax(dim=-1)
        expected = cwsa.norm((attn @ cwsa.c_v(x)).transpose(1, 2).reshape(2, 768, 196)) + x
        for form in ("sdpa", "matmul_softmax"):
            with attention_form(form):
                torch.testing.assert_close(cwsa(x), expected, rtol=0, atol=1e-10)


def test_unused_backbone_tail_is_exactly_what_the_reference_reports(
    case: dict, model: GlintIQA, fed: torch.Tensor, run: tuple
) -> None:
    """We skip ViT blocks 10-11, the final norm and the head: the reference found that exactly
    those parameters cannot change its output, and changing them leaves ours bit-identical."""
    tail = [n for n, _ in model.named_parameters()
            if n.startswith(("vgfe.backbone.blocks.10.", "vgfe.backbone.blocks.11.",
                             "vgfe.backbone.norm.", "vgfe.backbone.head."))]
    assert sorted(tail) == sorted(G.golden(MODEL)["state_dict"]["params_without_effect_on_output"])
    params = dict(model.named_parameters())
    saved = {n: params[n].detach().clone() for n in tail}
    try:
        with torch.no_grad():
            for n in tail:
                params[n].add_(0.5)
            out = model(fed)
    finally:
        with torch.no_grad():
            for n in tail:
                params[n].copy_(saved[n])
    assert torch.equal(out, run[0])


def test_rejects_other_input_sizes(model: GlintIQA) -> None:
    with pytest.raises(ValueError, match="224x224"):
        model(torch.zeros(1, 3, 256, 256))


def test_reference_checkpoint_loads_through_create_model(
    tmp_path: Path, case: dict, fed: torch.Tensor, model: GlintIQA, reference_state: dict[str, torch.Tensor]
) -> None:
    """The reference's save_checkpoint format: {"epoch", "state_dict", "best_srocc"}."""
    path = tmp_path / "glintiqa_best.pth"
    shapes = {name: tensor.shape for name, tensor in model.state_dict().items()}
    # golden.py hands 0-d entries (num_batches_tracked) back as shape (1,); a real checkpoint has ().
    state = {name: t.reshape(shapes[name]) for name, t in reference_state.items()}
    torch.save({"epoch": 3, "state_dict": state, "best_srocc": 0.9}, path)
    net = create_model(MODEL, checkpoint=path)
    assert not net.training
    with torch.no_grad():
        out = net(fed)
    assert np.abs(out.double().numpy() - G.golden_output(case)).max() <= G.output_atol(case)


def test_legacy_names_are_converted(reference_state: dict[str, torch.Tensor]) -> None:
    legacy = {
        "module.transformer.blocks.3.attn.qkv.weight": "vgfe.backbone.blocks.3.attn.qkv.weight",
        "cnn.layer2.0.downsample.1.running_var": "clfe.backbone.layer2.0.downsample.1.running_var",
        "patch_embed2.proj.bias": "clfe.patch_embed2.proj.bias",
        "att_cnn.c_q.weight": "local_cwsa.c_q.weight",
        "proj.weight": "local_projection.weight",
        "fusion4.norm.bias": "cwsa4.norm.bias",
        "conv1.weight": "siem1.conv.weight",
        "out.3.bias": "quality_head.layers.3.bias",
    }
    converted = convert_legacy_state_dict({k: torch.zeros(1) for k in legacy})
    assert sorted(converted) == sorted(legacy.values())
    assert list(convert_legacy_state_dict(reference_state)) == list(reference_state)  # current names pass through


def test_25_grid_crops_of_a_clive_photo() -> None:
    images = SHARED / "datasets" / "clive" / "images"
    if not images.is_dir():
        pytest.skip(f"shared data not found at {images}")
    image = load_image(images / "100.webp")
    spec = get_model_info(MODEL).preprocess
    batch = spec.apply(image)
    h, w = image.shape[:2]
    assert batch.shape == (25, 3, 224, 224) and batch.dtype == np.float32
    # No resize: the corner crops are the image's own corners, normalised to 2 * x / 255 - 1.
    first = image[:224, :224].transpose(2, 0, 1).astype(np.float32) / 255
    last = image[h - 224:, w - 224:].transpose(2, 0, 1).astype(np.float32) / 255
    np.testing.assert_allclose(batch[0], (first - 0.5) / 0.5, atol=1e-6)
    np.testing.assert_allclose(batch[-1], (last - 0.5) / 0.5, atol=1e-6)
    assert batch.min() >= -1.0 and batch.max() <= 1.0


# --- ONNX export -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module", params=["sdpa", "matmul_softmax"])
def exported(request: pytest.FixtureRequest, model: GlintIQA, fed: torch.Tensor, tmp_path_factory) -> tuple:
    form = request.param
    path = tmp_path_factory.mktemp("glintiqa_onnx") / f"glintiqa_{form}.onnx"
    with attention_form(form), torch.no_grad():
        program = torch.onnx.export(model, (fed,), dynamo=True, opset_version=23, verbose=False)
    program.save(str(path))
    return form, path


def test_onnx_export_matches_pytorch(exported: tuple, case: dict, run: tuple, fed: torch.Tensor) -> None:
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    form, path = exported
    ops = collections.Counter(node.op_type for node in onnx.load(str(path)).graph.node)
    if form == "sdpa":
        assert (ops["Attention"], ops["Softmax"]) == (ATTENTION_CALLS, 0), ops
    else:
        assert (ops["Attention"], ops["Softmax"]) == (0, ATTENTION_CALLS), ops
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {session.get_inputs()[0].name: fed.numpy()})
    assert out.shape == (2,)
    np.testing.assert_allclose(out, run[0].numpy(), rtol=0, atol=1e-4)
    assert np.abs(out - G.golden_output(case)).max() <= G.output_atol(case)
