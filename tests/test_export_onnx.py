"""ONNX export: fused attention per form, I/O contract, parity with PyTorch on real images, and the
ORT MultiHeadAttention rewrite running in ONNX Runtime."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from edge_iqa.errors import ExportError
from edge_iqa.export import calibration
from edge_iqa.export.attention_forms import (
    check_fused_attention,
    matmul_softmax_patterns,
    op_counts,
    rewrite_attention_to_mha,
)
from edge_iqa.export.calibration import PreparedImages
from edge_iqa.export.onnx_export import count_attention_calls
from edge_iqa.export.parity import raw_scores, reference_scorer
from tests.export_helpers import INPUT_SIZE, artifact_scorer, dev_model, dev_spec, exported

ort = pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def real_stacks() -> PreparedImages:
    return calibration.prepare_images(calibration.split(4, 0, 6).evaluation, dev_spec())


def test_attention_calls_are_counted() -> None:
    # edge_hybrid_n: semantic self-attention, two top-down cross-attentions, attention pooling.
    assert count_attention_calls(dev_model(), (torch.zeros(1, 3, *INPUT_SIZE),)) == 4


def test_onnx_attention_form_has_one_attention_op_per_call() -> None:
    graph = exported("onnx_attention")
    model = onnx.load(str(graph.path))
    assert op_counts(model)["Attention"] == graph.attention_calls == graph.fused_attention_ops == 4
    assert not [n for n in model.graph.node if n.op_type == "Softmax"]
    assert any(o.domain in ("", "ai.onnx") and o.version == 23 for o in model.opset_import)


def test_matmul_softmax_form_has_no_attention_op() -> None:
    graph = exported("matmul_softmax")
    model = onnx.load(str(graph.path))
    counts = op_counts(model)
    assert counts["Attention"] == 0 and counts["Softmax"] == 4
    assert len(matmul_softmax_patterns(model)) == graph.attention_calls == 4


def test_io_contract_and_dynamic_batch() -> None:
    graph = exported("onnx_attention")
    session = ort.InferenceSession(str(graph.path), providers=["CPUExecutionProvider"])
    (inp,), (out,) = session.get_inputs(), session.get_outputs()
    assert (inp.name, inp.shape, out.name, out.shape) == ("image", ["batch", 3, *INPUT_SIZE], "score", ["batch"])
    for batch in (1, 3):
        x = np.random.default_rng(batch).standard_normal((batch, 3, *INPUT_SIZE), dtype=np.float32)
        assert session.run(None, {"image": x})[0].shape == (batch,)
    assert graph.io_record()["inputs"][0]["shape"] == [-1, 3, *INPUT_SIZE]


@pytest.mark.parametrize("form", ["onnx_attention", "matmul_softmax"])
def test_parity_with_pytorch_on_real_images(tmp_path, form: str, real_stacks: PreparedImages) -> None:
    reference = raw_scores(reference_scorer(dev_model(), dev_spec(), ("image",)), real_stacks)
    scores = raw_scores(artifact_scorer(exported(form).path, tmp_path / "ort"), real_stacks)
    assert np.ptp(reference) > 0  # real images give distinct scores, so the comparison means something
    assert np.abs(scores - reference).max() < 1e-4
    assert np.array_equal(np.argsort(scores), np.argsort(reference))


def test_ort_mha_rewrite_runs_in_onnxruntime_and_matches(tmp_path, real_stacks: PreparedImages) -> None:
    graph = exported("onnx_attention")
    model = rewrite_attention_to_mha(onnx.load(str(graph.path)))
    counts = op_counts(model)
    assert counts["com.microsoft::MultiHeadAttention"] == graph.attention_calls and counts["Attention"] == 0
    check_fused_attention(model, "ort_mha", graph.attention_calls)
    path = tmp_path / "mha.onnx"
    onnx.save(model, str(path))
    mha = raw_scores(artifact_scorer(path, tmp_path / "mha"), real_stacks)
    base = raw_scores(artifact_scorer(graph.path, tmp_path / "base"), real_stacks)
    assert np.abs(mha - base).max() < 1e-5


def test_pixel_input_graph_normalises_like_the_float_rows(tmp_path, real_stacks: PreparedImages) -> None:
    """input_dtype = "uint8": the graph takes the crops' pixels (batch, H, W, 3) and its first ops are
    the spec's normalisation, so ONNX Runtime gives the float graph's scores bit for bit."""
    graph = exported("onnx_attention", pixels=True)
    session = ort.InferenceSession(str(graph.path), providers=["CPUExecutionProvider"])
    (inp,) = session.get_inputs()
    assert (inp.name, inp.shape, inp.type) == ("image", ["batch", *INPUT_SIZE, 3], "tensor(uint8)")
    assert graph.io_record()["inputs"] == [{"name": "image", "shape": [-1, *INPUT_SIZE, 3], "dtype": "uint8"}]
    pixels = artifact_scorer(graph.path, tmp_path / "pixels", io=graph.io_record())
    rows = artifact_scorer(exported("onnx_attention").path, tmp_path / "rows")
    assert pixels.takes_pixels and not rows.takes_pixels and real_stacks.rows().dtype == np.uint8
    assert np.ptp(raw_scores(rows, real_stacks)) > 0
    np.testing.assert_array_equal(raw_scores(pixels, real_stacks), raw_scores(rows, real_stacks))
    # The module paths the keep_fp patterns match are the model's, not the wrapper's.
    from edge_iqa.export.graph_scopes import nodes_matching

    def kept(path):
        model = onnx.load(str(path))
        names = set(nodes_matching(model, ["backbone.0", "head"]))
        return [node.op_type for node in model.graph.node if node.name in names]

    assert "Conv" in kept(graph.path) and kept(graph.path) == kept(exported("onnx_attention").path)
    with pytest.raises(ExportError, match="single-input"):
        from edge_iqa.export.onnx_export import export_onnx

        export_onnx(dev_model(), tmp_path / "x.onnx", input_names=("image", "depth"), input_size=INPUT_SIZE,
                    form="onnx_attention", pixel_spec=dev_spec())


def test_fused_count_mismatch_is_an_error() -> None:
    model = onnx.load(str(exported("onnx_attention").path))
    with pytest.raises(ExportError, match="fused attention"):
        check_fused_attention(model, "onnx_attention", 5)
    with pytest.raises(ExportError, match="still holds"):
        check_fused_attention(model, "matmul_softmax", 0)
