"""Depth maps for depth-guided models (DGIQA): the torch-free implementation lives in
:mod:`edge_iqa.data.depth` (the map transforms) and :mod:`edge_iqa.runtime.depth` (the ONNX depth
network on the runtime backends), so the runtime can use them without importing this package (whose
``__init__`` registers the PyTorch models). This module keeps the model-side import path.
"""

from edge_iqa.data.depth import (
    DepthFromMap,
    DepthMapSource,
    DepthSource,
    as_depth_source,
    depth_network_input,
    depth_to_uint8_rgb,
    dgiqa_inputs,
    min_max_normalize,
    read_depth_map,
    resize_depth,
)
from edge_iqa.runtime.depth import OnnxDepthEstimator, depth_anything_input_size

__all__ = ["DepthFromMap", "DepthMapSource", "DepthSource", "OnnxDepthEstimator", "as_depth_source",
           "depth_anything_input_size", "depth_network_input", "depth_to_uint8_rgb", "dgiqa_inputs",
           "min_max_normalize", "read_depth_map", "resize_depth"]
