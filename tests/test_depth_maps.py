"""Depth maps for depth-guided models (DGIQA), torch-free: reading a user's map (16-bit PNG,
arrays), the refusals, Depth Anything's resize rule, and an ONNX depth network run on the runtime's
ordinary backends (ONNX Runtime, OpenVINO). Needs numpy, Pillow, onnx (to write the tiny depth
network) and a backend; never torch."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from edge_iqa.data.depth import DepthFromMap, depth_network_input, min_max_normalize, read_depth_map
from edge_iqa.data.preprocess import PreprocessSpec
from edge_iqa.errors import ArrayInputError
from edge_iqa.runtime.depth import OnnxDepthEstimator, depth_anything_input_size
from edge_iqa.runtime.onnx_inputs import graph_inputs

DEPTH_PY = Path(__file__).resolve().parents[1] / "edge_iqa" / "models" / "depth.py"
#: DGIQA's preprocessing (``get_model_info("dgiqa").preprocess``) without importing the models.
DGIQA_SPEC = PreprocessSpec(input_size=(224, 224), resize="shorter_side", resize_to=384, crop="grid", grid=(3, 3),
                            interpolation="bilinear")


def _export_depth_net(path: Path, size: tuple[int, int] | None) -> None:
    """A 'depth network': a 1x1 conv returning the normalised red channel, (1, 1, H, W) out.
    Fixed input size, or dynamic H and W when ``size`` is None."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    h, w = size or ("height", "width")
    weight = numpy_helper.from_array(np.array([1.0, 0.0, 0.0], np.float32).reshape(1, 3, 1, 1), "weight")
    bias = numpy_helper.from_array(np.zeros(1, np.float32), "bias")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["image", "weight", "bias"], ["depth"])], "red_depth",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, h, w])],
        [helper.make_tensor_value_info("depth", TensorProto.FLOAT, [1, 1, h, w])], [weight, bias])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


@pytest.fixture(scope="module")
def depth_nets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    pytest.importorskip("onnxruntime")
    folder = tmp_path_factory.mktemp("depth_nets")
    paths = {"fixed": folder / "fixed.onnx", "dynamic": folder / "dynamic.onnx"}
    _export_depth_net(paths["fixed"], (64, 80))
    _export_depth_net(paths["dynamic"], None)
    return paths


def test_depth_from_array_and_16_bit_png(tmp_path: Path) -> None:
    from PIL import Image

    rng = np.random.default_rng(5)
    depth = rng.uniform(300.0, 9000.0, (30, 40))
    png = tmp_path / "depth16.png"
    Image.fromarray(depth.astype(np.uint16)).save(png)
    raw = read_depth_map(png)
    assert raw.dtype == np.float32 and raw.shape == (30, 40)
    np.testing.assert_array_equal(raw, depth.astype(np.uint16))  # full 16-bit precision kept
    image = np.zeros((60, 80, 3), dtype=np.uint8)
    for source in (png, depth, depth[:, :, None], Image.open(png)):
        d = DepthFromMap(source)(image)
        assert d.shape == (60, 80) and d.dtype == np.float32
        assert d.min() == 0.0 and d.max() == 1.0
    same_size = DepthFromMap(depth)(np.zeros((30, 40, 3), dtype=np.uint8))
    np.testing.assert_allclose(same_size, (depth - depth.min()) / (depth.max() - depth.min()), atol=1e-6)
    assert not min_max_normalize(np.full((4, 4), 3.0)).any()


def test_depth_rejects_what_is_not_depth() -> None:
    colour = np.zeros((8, 8, 3), dtype=np.uint8)
    colour[..., 0] = 200  # a colour-mapped visualisation, not a depth map
    with pytest.raises(ArrayInputError, match="coloured"):
        read_depth_map(colour)
    with pytest.raises(ArrayInputError, match="NaN"):
        min_max_normalize(np.array([[0.0, np.nan]]))
    with pytest.raises(ArrayInputError, match=r"\(H, W\)"):
        depth_network_input(np.zeros((2, 8, 8)), DGIQA_SPEC)


def test_onnx_depth_estimator(depth_nets: dict[str, Path]) -> None:
    image = np.random.default_rng(11).integers(0, 256, (64, 80, 3), dtype=np.uint8)
    fixed = OnnxDepthEstimator(depth_nets["fixed"], threads=1)
    assert fixed.fixed_size == (64, 80)
    d = fixed(image)
    red = image[:, :, 0].astype(np.float64)
    # Same size in and out: the min-max of the normalised red channel is the min-max of red itself.
    np.testing.assert_allclose(d, (red - red.min()) / (red.max() - red.min()), atol=1e-5)
    dynamic = OnnxDepthEstimator(depth_nets["dynamic"], lower_bound=98, threads=1)
    assert dynamic.fixed_size is None and dynamic.network_size(64, 80) == depth_anything_input_size(64, 80, 98)
    d = dynamic(image)
    assert d.shape == (64, 80) and d.min() == 0.0 and d.max() == 1.0
    assert np.corrcoef(d.ravel(), red.ravel())[0, 1] > 0.9  # upsample/downsample, same content


def test_depth_anything_resize_rule() -> None:
    # Depth Anything's Resize(518, keep_aspect_ratio, ensure_multiple_of=14, 'lower_bound').
    assert depth_anything_input_size(384, 512) == (518, 686)
    assert depth_anything_input_size(512, 384) == (686, 518)
    assert depth_anything_input_size(1000, 1000) == (518, 518)
    h, w = depth_anything_input_size(333, 1000)
    assert h >= 518 and h % 14 == 0 and w % 14 == 0


def test_depth_module_is_torch_free(depth_nets: dict[str, Path]) -> None:
    """The runtime can use depth.py without torch: load it with torch made unimportable."""
    script = textwrap.dedent(f"""
        import importlib.util, sys
        import numpy as np
        sys.modules["torch"] = None  # any 'import torch' now raises ImportError
        spec = importlib.util.spec_from_file_location("depth", {str(DEPTH_PY)!r})
        depth = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(depth)
        image = np.random.default_rng(0).integers(0, 256, (64, 80, 3), dtype=np.uint8)
        estimated = depth.OnnxDepthEstimator({str(depth_nets["fixed"])!r}, threads=1)(image)
        given = depth.DepthFromMap(image[:, :, 0])(image)
        assert np.abs(estimated - given).max() < 1e-5
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_onnx_depth_estimator_runs_on_the_runtime_backends(depth_nets: dict[str, Path], runtime: str) -> None:
    """The depth network is loaded by the runtime's own backend (no second request pool), reads its
    input from the ONNX file without the onnx package, and agrees across backends."""
    pytest.importorskip(runtime)
    from edge_iqa.runtime.backends.base import Backend

    assert [(i.name, i.dims) for i in graph_inputs(depth_nets["fixed"])] == [("image", (1, 3, 64, 80))]
    assert [(i.name, i.dims) for i in graph_inputs(depth_nets["dynamic"])] == [("image", (1, 3, None, None))]
    image = np.random.default_rng(12).integers(0, 256, (64, 80, 3), dtype=np.uint8)
    estimator = OnnxDepthEstimator(depth_nets["dynamic"], lower_bound=98, threads=1, runtime=runtime)
    assert isinstance(estimator.backend, Backend) and estimator.backend.name == runtime
    reference = OnnxDepthEstimator(depth_nets["dynamic"], lower_bound=98, threads=1)(image)
    np.testing.assert_allclose(estimator(image), reference, rtol=0, atol=1e-5)
    estimator.close()
