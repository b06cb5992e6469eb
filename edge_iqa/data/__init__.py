"""Image decoding, the preprocessing spec, datasets, splits and synthetic distortions.

`imageio`, `preprocess` and `depth` (depth-map transforms) are torch-free (the runtime uses them);
`datasets` needs torch.
"""

from edge_iqa.data.imageio import MAX_PIXELS, MIN_SIDE, load_image
from edge_iqa.data.preprocess import PreprocessSpec

__all__ = ["MAX_PIXELS", "MIN_SIDE", "PreprocessSpec", "load_image"]
