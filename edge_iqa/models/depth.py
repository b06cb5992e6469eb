"""Depth maps for depth-guided models (DGIQA): the torch-free implementation lives in
:mod:`edge_iqa.runtime.depth`, so the runtime can use it without importing this package (whose
``__init__`` registers the PyTorch models). This module keeps the model-side import path.
"""

from edge_iqa.runtime.depth import (
    DepthFromMap,
    DepthMapSource,
    DepthSource,
    OnnxDepthEstimator,
    as_depth_source,
    depth_anything_input_size,
    depth_network_input,
    depth_to_uint8_rgb,
    dgiqa_inputs,
    min_max_normalize,
    read_depth_map,
    resize_depth,
)

__all__ = ["DepthFromMap", "DepthMapSource", "DepthSource", "OnnxDepthEstimator", "as_depth_source",
           "depth_anything_input_size", "depth_network_input", "depth_to_uint8_rgb", "dgiqa_inputs",
           "min_max_normalize", "read_depth_map", "resize_depth"]
