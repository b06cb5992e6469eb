"""Shared harness for the seed models' golden tests (fixtures in tests/fixtures/reference/).

The fixtures are copies of the project's reference folder: per model, the reference state_dict
entries, the deterministic weight rule and the reference code's outputs on deterministic inputs.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edge_iqa.models.golden_weights import REFERENCE_DIR, deterministic_state_dict, reference_entries

__all__ = ["REFERENCE_DIR", "deterministic_state_dict", "reference_entries"]
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32).reshape(1, 3, 1, 1)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32).reshape(1, 3, 1, 1)


def golden(model: str) -> dict[str, Any]:
    return json.loads((REFERENCE_DIR / f"{model}_golden.json").read_text())


def golden_cases(model: str) -> list[dict[str, Any]]:
    return golden(model)["cases"]


def case_hw(case: dict[str, Any]) -> tuple[int, int]:
    h, w = case["name"].split("x")
    return int(h), int(w)


def raw_input(case: dict[str, Any]) -> np.ndarray:
    """The (2, 3, H, W) float32 [0, 1) image batch of a case (section 2 of the reference README)."""
    h, w = case_hw(case)
    return np.random.default_rng(1234).uniform(0, 1, (2, 3, h, w)).astype(np.float32)


def raw_depth(case: dict[str, Any]) -> np.ndarray:
    """DGIQA's (2, 1, 224, 224) depth batch in [0, 1)."""
    h, w = case_hw(case)
    return np.random.default_rng(99).uniform(0, 1, (2, 1, h, w)).astype(np.float32)


def normalise(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    return ((x - mean) / std).astype(np.float32)


def golden_output(case: dict[str, Any]) -> np.ndarray:
    return np.asarray(case["output"]["values"], dtype=np.float64)


def output_atol(case: dict[str, Any]) -> float:
    return float(case["nondeterminism"]["recommended_output_atol"])


def assert_same_state_dict_layout(module: torch.nn.Module, model: str) -> None:
    """Exactly the reference names, shapes and dtypes (order is free: load_state_dict ignores it)."""
    expected = [(n, tuple(s), d.replace("torch.", "")) for n, s, d in reference_entries(model)]
    actual = [(n, tuple(t.shape), str(t.dtype).replace("torch.", "")) for n, t in module.state_dict().items()]
    missing = sorted({e[0] for e in expected} - {a[0] for a in actual})
    unexpected = sorted({a[0] for a in actual} - {e[0] for e in expected})
    assert not missing and not unexpected, f"missing {missing[:10]}, unexpected {unexpected[:10]}"
    assert sorted(actual) == sorted(expected)


def golden_model(model: str) -> torch.nn.Module:
    """The registered model with the fixture's deterministic weights, strictly loaded, in eval mode."""
    from edge_iqa.models import create_model

    module = create_model(model)
    module.load_state_dict(deterministic_state_dict(model), strict=True)
    return module.eval()


@contextlib.contextmanager
def recorded_attention(monkeypatch: Any) -> Iterator[list[tuple[int, ...]]]:
    """Record the key shape of every call of the shared ``scaled_dot_product`` (through
    ``MultiHeadAttention`` and any caller that looks it up on the module)."""
    from edge_iqa.models.layers import attention as attention_module

    calls: list[tuple[int, ...]] = []
    original = attention_module.scaled_dot_product

    def recording(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: Any = None, scale: Any = None) -> Any:
        calls.append(tuple(k.shape))
        return original(q, k, v, bias=bias, scale=scale)

    monkeypatch.setattr(attention_module, "scaled_dot_product", recording)
    yield calls


def assert_fed_tensor_matches(tensor: torch.Tensor, expected: dict[str, Any]) -> None:
    """The tensor fed to forward equals the reference's (shape, float64 sum, first values)."""
    import pytest

    x = tensor.double()
    assert list(x.shape) == expected["shape"]
    assert x.sum().item() == pytest.approx(expected["sum"], rel=1e-9)
    np.testing.assert_allclose(x.flatten()[:4].numpy(), expected["first4"], rtol=1e-7)


def assert_summary_matches(name: str, tensor: torch.Tensor, ref: dict[str, Any]) -> None:
    """A hooked intermediate tensor against the reference's summary, within 1e-4 x its RMS."""
    t = tensor.double()
    assert list(t.shape) == ref["shape"], name
    rms = float(np.hypot(ref["mean"], ref["std"]))
    for got, want in ((t.mean(), ref["mean"]), (t.std(), ref["std"]), (t.abs().max(), ref["absmax"])):
        assert abs(got.item() - want) <= 1e-4 * rms, name
    np.testing.assert_allclose(t.flatten()[:4].numpy(), ref["first4"], atol=1e-4 * rms, rtol=0)


def export_and_run(model: torch.nn.Module, x: torch.Tensor, form: str, path: Path) -> tuple[Any, np.ndarray]:
    """Export ``model`` (dynamo, opset 23) in attention ``form``; (op counts, ONNX Runtime output on x)."""
    from collections import Counter

    import onnx
    import onnxruntime as ort

    from edge_iqa.models.layers.attention import attention_form

    with attention_form(form), torch.no_grad():
        program = torch.onnx.export(model, (x,), dynamo=True, opset_version=23)
    program.save(str(path))
    ops = Counter(node.op_type for node in onnx.load(str(path), load_external_data=False).graph.node)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    (y,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    return ops, y
