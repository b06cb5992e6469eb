"""By hand (issue 13): can Pillow's bilinear resize be split into its two passes (and each pass into bands
for two threads) and still give Pillow's own bytes? Pillow resizes horizontally, then vertically, each pass
rounding to 8 bits; this resizes random images both ways round with one-axis resizes and counts which
order reproduces ``Image.resize`` exactly.

    python scripts/experiments/pillow_resize_order.py [TRIALS [SEED]]
"""

import sys

import numpy as np
import PIL
from PIL import Image

BILINEAR = Image.Resampling.BILINEAR


def resized(image: np.ndarray, width: int, height: int) -> np.ndarray:
    return np.asarray(Image.fromarray(image).resize((width, height), resample=BILINEAR))


trials = int(sys.argv[1]) if len(sys.argv) > 1 else 200
rng = np.random.default_rng(int(sys.argv[2]) if len(sys.argv) > 2 else 0)
counts = {"horizontal first": 0, "vertical first": 0, "both": 0, "neither": 0}
for _ in range(trials):
    height, width = (int(v) for v in rng.integers(20, 900, 2))
    new_height, new_width = (int(v) for v in rng.integers(8, 700, 2))
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    reference = resized(image, new_width, new_height)
    horizontal = np.array_equal(reference, resized(resized(image, new_width, height), new_width, new_height))
    vertical = np.array_equal(reference, resized(resized(image, width, new_height), new_width, new_height))
    key = "both" if horizontal and vertical else "horizontal first" if horizontal else \
        "vertical first" if vertical else "neither"
    counts[key] += 1
print(f"Pillow {PIL.__version__}, {trials} random sizes: {counts}")
