"""The 25 KADID-10k distortion types, five levels each, as vectorised numpy/Pillow/scipy functions.

    distort(image_uint8, "jpeg", level=3, seed=0) -> HxWx3 uint8

Each type is a :class:`DistortionType` in :data:`DISTORTIONS` with its KADID-10k id (1..25), its
group and the five parameter values of its levels. The parameters follow the KADID-10k paper
(Lin, Hosu, Saupe, QoMEX 2019) and the public KADIS-700k generator in spirit; where that
generator's level 1 is a no-op (e.g. a Lab chroma gain of 1) or its levels are not ordered by
severity (mean shift, contrast change), ours differ and ``docs/distortions.md`` says how.
Parameters are in pixels of a KADID-sized image (512x384); they are not rescaled with image size.

Design rules:
- **Levels are ordered by severity**: level 5 is always further from the original than level 1
  (tested with a full-reference metric per type in ``tests/test_distortions.py``).
- **Deterministic**: all randomness comes from ``numpy.random.default_rng(seed)``; the random
  draws do not depend on the level (common random numbers), so the levels of one seed are the
  same noise field / patch positions scaled up, which keeps the level order monotone per image.
- Work in float32 [0, 1] RGB; round and clip to uint8 once at the end.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np
from PIL import Image, features
from scipy import ndimage, signal

from edge_iqa.data.imageio import load_image

FloatImage = np.ndarray  # HxWx3 float32 in [0, 1] (intermediate values may leave the range)
DistortFn = Callable[[FloatImage, float, np.random.Generator], FloatImage]

GROUPS = ("blur", "color", "compression", "noise", "brightness", "spatial", "sharpness_contrast")


@dataclass(frozen=True)
class DistortionType:
    """One distortion type: what it does, how strong each level is, and the function doing it."""

    name: str
    kadid_id: int
    group: str
    parameter: str  # what the level values mean
    levels: tuple[float, float, float, float, float]
    description: str
    fn: DistortFn
    random: bool  # whether the seed changes the output

    def apply(self, image: np.ndarray, level: int, seed: int = 0) -> np.ndarray:
        return distort(image, self.name, level, seed)


# --- colour-space helpers (sRGB, D65) ---------------------------------------------------------------
_RGB2XYZ = np.array([[0.412453, 0.357580, 0.180423],
                     [0.212671, 0.715160, 0.072169],
                     [0.019334, 0.119193, 0.950227]], dtype=np.float32)
_XYZ2RGB = np.linalg.inv(_RGB2XYZ).astype(np.float32)
_WHITE = _RGB2XYZ.sum(axis=1)


def _srgb_to_linear(x: FloatImage) -> FloatImage:
    x = np.clip(x, 0.0, 1.0)
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def _linear_to_srgb(x: FloatImage) -> FloatImage:
    x = np.clip(x, 0.0, 1.0)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055)


def rgb_to_lab(rgb: FloatImage) -> FloatImage:
    """sRGB [0, 1] -> CIE L*a*b* (L in [0, 100])."""
    xyz = _srgb_to_linear(rgb) @ _RGB2XYZ.T / _WHITE
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    lab = np.empty_like(f)
    lab[..., 0] = 116 * f[..., 1] - 16
    lab[..., 1] = 500 * (f[..., 0] - f[..., 1])
    lab[..., 2] = 200 * (f[..., 1] - f[..., 2])
    return lab.astype(np.float32)


def lab_to_rgb(lab: FloatImage) -> FloatImage:
    """CIE L*a*b* -> sRGB [0, 1], out-of-gamut values clipped."""
    fy = (lab[..., 0] + 16) / 116
    f = np.stack([fy + lab[..., 1] / 500, fy, fy - lab[..., 2] / 200], axis=-1)
    xyz = np.where(f > 6 / 29, f**3, 3 * (6 / 29) ** 2 * (f - 4 / 29)) * _WHITE
    return _linear_to_srgb(xyz @ _XYZ2RGB.T).astype(np.float32)


_YCBCR = np.array([[0.299, 0.587, 0.114],
                   [-0.168736, -0.331264, 0.5],
                   [0.5, -0.418688, -0.081312]], dtype=np.float32)
_YCBCR_INV = np.linalg.inv(_YCBCR).astype(np.float32)


def _luma(x: FloatImage) -> np.ndarray:
    return x @ _YCBCR[0]


# --- filtering helpers --------------------------------------------------------------------------------
def _filter2d(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Correlate every channel with ``kernel`` (edge-replicated borders), FFT-based for big kernels."""
    kh, kw = kernel.shape
    squeeze = x.ndim == 2
    if squeeze:
        x = x[..., None]
    padded = np.pad(x, ((kh // 2, kh - 1 - kh // 2), (kw // 2, kw - 1 - kw // 2), (0, 0)), mode="edge")
    out = signal.fftconvolve(padded, kernel[::-1, ::-1, None].astype(np.float32), mode="valid", axes=(0, 1))
    out = out.astype(np.float32)
    return out[..., 0] if squeeze else out


def _gaussian(x: np.ndarray, sigma: float) -> np.ndarray:
    sigmas = (sigma, sigma, 0) if x.ndim == 3 else sigma
    return ndimage.gaussian_filter(x, sigmas, mode="nearest", truncate=3.0).astype(np.float32)


def disk_kernel(radius: float, supersample: int = 8) -> np.ndarray:
    """Anti-aliased disk (defocus PSF): each tap is the fraction of its pixel inside the circle."""
    r = int(np.ceil(radius))
    offsets = (np.arange(supersample) + 0.5) / supersample - 0.5
    grid = np.arange(-r, r + 1)
    yy = (grid[:, None, None, None] + offsets[None, None, :, None])
    xx = (grid[None, :, None, None] + offsets[None, None, None, :])
    kernel = ((yy**2 + xx**2) <= radius**2).mean(axis=(2, 3))
    return (kernel / kernel.sum()).astype(np.float32)


def motion_kernel(length: float, angle_deg: float) -> np.ndarray:
    """A line PSF of ``length`` pixels at ``angle_deg``, rasterised with bilinear splatting."""
    half = max(length - 1, 0) / 2
    r = int(np.ceil(half)) + 1
    t = np.linspace(-half, half, max(int(length * 8), 2))
    ys = -t * np.sin(np.deg2rad(angle_deg)) + r
    xs = t * np.cos(np.deg2rad(angle_deg)) + r
    kernel = np.zeros((2 * r + 1, 2 * r + 1), np.float64)
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    fy, fx = ys - y0, xs - x0
    for dy, dx, w in ((0, 0, (1 - fy) * (1 - fx)), (0, 1, (1 - fy) * fx), (1, 0, fy * (1 - fx)), (1, 1, fy * fx)):
        np.add.at(kernel, (np.clip(y0 + dy, 0, 2 * r), np.clip(x0 + dx, 0, 2 * r)), w)
    return (kernel / kernel.sum()).astype(np.float32)


def _tone_curve(x: np.ndarray, k: float) -> np.ndarray:
    """``x + k x (1 - x)`` clipped to [0, 1]: lifts (k > 0) or lowers (k < 0) mid-tones, keeps 0 and 1.

    For |k| > 1 the parabola leaves [0, 1] and the clip saturates highlights (or shadows): the
    over-/under-exposure of the strongest levels. The clipped curve stays monotone in x.
    """
    return np.clip(x + k * x * (1 - x), 0.0, 1.0)


def _through_pillow(x: FloatImage, fmt: str, **params: object) -> FloatImage:
    buffer = io.BytesIO()
    Image.fromarray(_to_uint8(x)).save(buffer, format=fmt, **params)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return np.asarray(decoded.convert("RGB"), dtype=np.float32) / 255.0


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


# --- the 25 distortions ------------------------------------------------------------------------------
def gaussian_blur(x: FloatImage, sigma: float, rng: np.random.Generator) -> FloatImage:
    return _gaussian(x, sigma)


def lens_blur(x: FloatImage, radius: float, rng: np.random.Generator) -> FloatImage:
    return _filter2d(x, disk_kernel(radius))


def motion_blur(x: FloatImage, length: float, rng: np.random.Generator) -> FloatImage:
    return _filter2d(x, motion_kernel(length, rng.uniform(0.0, 180.0)))


def color_diffusion(x: FloatImage, amount: float, rng: np.random.Generator) -> FloatImage:
    # Chroma bleeds over edges (blurred a*b*) and is amplified, so colour halos become visible.
    lab = rgb_to_lab(x)
    lab[..., 1:] = _gaussian(lab[..., 1:], 1.5 * amount + 2.0) * (1.0 + 0.25 * amount)
    return lab_to_rgb(lab)


def color_shift(x: FloatImage, amount: float, rng: np.random.Generator) -> FloatImage:
    # The green channel is displaced by up to ``amount`` pixels in a random direction near edges
    # (weighted by smoothed gradient magnitude), like lateral chromatic aberration. The displaced
    # copy is smeared along the path (mean of the shifts t * amount, t in (0, 1]): a plain shift's
    # error saturates once it exceeds the texture scale, so a stronger level could look milder.
    # For the same reason the edge band widens and strengthens with the amount.
    gy, gx = np.gradient(_luma(x))
    edges = _gaussian(np.hypot(gx, gy).astype(np.float32), 2.0 + amount / 2.0)
    lo, hi = np.percentile(edges, [1, 99])
    weight = np.clip((edges - lo) / max(hi - lo, 1e-6) * (0.5 + amount / 8.0), 0.0, 1.0)
    direction = rng.normal(size=2)
    dy, dx = direction / np.linalg.norm(direction) * amount
    steps = max(2, int(np.ceil(amount)))
    green = np.mean([ndimage.shift(x[..., 1], (dy * t, dx * t), order=1, mode="nearest")
                     for t in np.linspace(1.0 / steps, 1.0, steps)], axis=0)
    out = x.copy()
    out[..., 1] = green * weight + x[..., 1] * (1 - weight)
    return out


def color_quantization(x: FloatImage, colors: float, rng: np.random.Generator) -> FloatImage:
    image = Image.fromarray(_to_uint8(x))
    quantized = image.quantize(colors=int(colors), method=Image.Quantize.MEDIANCUT,
                               dither=Image.Dither.FLOYDSTEINBERG)
    return np.asarray(quantized.convert("RGB"), dtype=np.float32) / 255.0


def color_saturation_hsv(x: FloatImage, factor: float, rng: np.random.Generator) -> FloatImage:
    # HSV saturation scaled by ``factor``; a negative factor swings colours to the complementary
    # hue (the strongest level). Written from V and S directly: c = V - (V - c) * factor.
    value = x.max(axis=-1, keepdims=True)
    return value - (value - x) * factor


def color_saturation_lab(x: FloatImage, factor: float, rng: np.random.Generator) -> FloatImage:
    lab = rgb_to_lab(x)
    lab[..., 1:] *= factor
    return lab_to_rgb(lab)


def jpeg2000(x: FloatImage, ratio: float, rng: np.random.Generator) -> FloatImage:
    if not features.check("jpg_2000"):
        # Documented fallback: without OpenJPEG in Pillow, JPEG at the quality whose bit rate is
        # closest to the J2K ratio (24 bpp / ratio); ringing differs, blur/blocking levels are similar.
        return jpeg(x, _JPEG_FOR_J2K_RATIO[ratio], rng)
    return _through_pillow(x, "JPEG2000", quality_mode="rates", quality_layers=[float(ratio)],
                           irreversible=True, num_resolutions=5)


def jpeg(x: FloatImage, quality: float, rng: np.random.Generator) -> FloatImage:
    return _through_pillow(x, "JPEG", quality=int(quality), subsampling="4:2:0")


def white_noise(x: FloatImage, variance: float, rng: np.random.Generator) -> FloatImage:
    return x + rng.standard_normal(x.shape, dtype=np.float32) * np.sqrt(variance)


def white_noise_color(x: FloatImage, variance: float, rng: np.random.Generator) -> FloatImage:
    # Noise added in YCbCr: luma gets ``variance``, each chroma channel 5x that (hence "in the
    # colour components": mostly coloured speckle).
    ycc = x @ _YCBCR.T
    scale = np.sqrt(variance * np.array([1.0, 5.0, 5.0], np.float32))
    ycc += rng.standard_normal(x.shape, dtype=np.float32) * scale
    return ycc @ _YCBCR_INV.T


def impulse_noise(x: FloatImage, density: float, rng: np.random.Generator) -> FloatImage:
    # Salt and pepper per channel value: draws are level-independent, the threshold is the level.
    draw = rng.random(x.shape, dtype=np.float32)
    salt = rng.random(x.shape, dtype=np.float32) < 0.5
    out = x.copy()
    hit = draw < density
    out[hit] = salt[hit].astype(np.float32)
    return out


def multiplicative_noise(x: FloatImage, variance: float, rng: np.random.Generator) -> FloatImage:
    return x * (1.0 + rng.standard_normal(x.shape, dtype=np.float32) * np.sqrt(variance))


def denoise(x: FloatImage, variance: float, rng: np.random.Generator) -> FloatImage:
    # White noise, then an adaptive Wiener filter told the true noise power: the smeared texture
    # and residual blotches of a denoiser (KADID used a learned denoiser; this is its cheap cousin).
    noisy = np.clip(x + rng.standard_normal(x.shape, dtype=np.float32) * np.sqrt(variance), 0, 1)
    out = np.empty_like(noisy)
    for channel in range(3):
        out[..., channel] = signal.wiener(noisy[..., channel], mysize=5, noise=variance)
    return out


def brighten(x: FloatImage, amount: float, rng: np.random.Generator) -> FloatImage:
    # Mid-tone lift applied to RGB and to L*, blended 2:1 (the RGB curve alone also desaturates).
    k = 2.0 * amount
    lab = rgb_to_lab(x)
    lab[..., 0] = _tone_curve(lab[..., 0] / 100.0, k) * 100.0
    return (2.0 * _tone_curve(x, k) + lab_to_rgb(lab)) / 3.0


def darken(x: FloatImage, amount: float, rng: np.random.Generator) -> FloatImage:
    return _tone_curve(x, -2.0 * amount)


def mean_shift(x: FloatImage, shift: float, rng: np.random.Generator) -> FloatImage:
    return x + shift


def jitter(x: FloatImage, amount: float, rng: np.random.Generator) -> FloatImage:
    # Every pixel fetched from a randomly displaced position (N(0, amount^2) px per axis), five
    # times in a row, with bilinear interpolation: a "scattered glass" look.
    h, w = x.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    out = x
    for _ in range(5):
        dy, dx = rng.standard_normal((2, h, w), dtype=np.float32) * amount
        coords = np.stack([yy + dy, xx + dx])
        out = np.stack([ndimage.map_coordinates(out[..., c], coords, order=1, mode="nearest")
                        for c in range(3)], axis=-1)
    return out


def non_eccentricity_patch(x: FloatImage, count: float, rng: np.random.Generator) -> FloatImage:
    # ``count`` 16x16 patches copied to a position up to 8 px away. The patch list is drawn for the
    # strongest level and the first ``count`` are used, so a stronger level adds patches.
    h, w = x.shape[:2]
    size, reach = min(16, h // 4, w // 4), 8
    draws = rng.random((_MAX_PATCHES, 4))
    out = x.copy()
    for sy, sx, oy, ox in draws[: int(count)]:
        y0 = reach + int(sy * max(h - size - 2 * reach, 1))
        x0 = reach + int(sx * max(w - size - 2 * reach, 1))
        y1 = int(np.clip(y0 + round((oy - 0.5) * 2 * reach), 0, h - size))
        x1 = int(np.clip(x0 + round((ox - 0.5) * 2 * reach), 0, w - size))
        out[y1:y1 + size, x1:x1 + size] = out[y0:y0 + size, x0:x0 + size].copy()
    return out


def pixelate(x: FloatImage, strength: float, rng: np.random.Generator) -> FloatImage:
    # Down-scale (box filter) by z = 0.95 - strength^0.6, then nearest-neighbour back up.
    h, w = x.shape[:2]
    z = 0.95 - strength**0.6
    image = Image.fromarray(_to_uint8(x))
    small = image.resize((max(1, round(w * z)), max(1, round(h * z))), Image.Resampling.BOX)
    return np.asarray(small.resize((w, h), Image.Resampling.NEAREST), dtype=np.float32) / 255.0


def quantization(x: FloatImage, steps: float, rng: np.random.Generator) -> FloatImage:
    # Each channel quantised to ``steps`` uniform levels, reconstructed at the bin centres.
    n = int(steps)
    return (np.minimum(np.floor(x * n), n - 1) + 0.5) / n


def color_block(x: FloatImage, count: float, rng: np.random.Generator) -> FloatImage:
    # ``count`` flat random-colour 32x32 squares. Positions are distinct cells of a grid taken in a
    # random order, so blocks never cover each other and a stronger level adds blocks.
    h, w = x.shape[:2]
    size = min(32, h // 4, w // 4)
    rows, cols = h // size, w // size
    cells = rng.permutation(rows * cols)[:_MAX_BLOCKS]
    # One random offset for the whole grid (within the margin the grid leaves): blocks are not
    # pinned to the image corner and still never overlap.
    off_y, off_x = int(rng.integers(0, h - rows * size + 1)), int(rng.integers(0, w - cols * size + 1))
    colors = rng.random((_MAX_BLOCKS, 3), dtype=np.float32)
    out = x.copy()
    for cell, color in zip(cells[: int(count)], colors, strict=False):
        y0, x0 = off_y + (cell // cols) * size, off_x + (cell % cols) * size
        out[y0:y0 + size, x0:x0 + size] = color
    return out


def high_sharpen(x: FloatImage, amount: float, rng: np.random.Generator) -> FloatImage:
    # Unsharp mask on L* (sigma 3 px) with gain ``amount``: halos and clipped edges when strong.
    lab = rgb_to_lab(x)
    luminance = lab[..., 0]
    lab[..., 0] = luminance + amount * (luminance - _gaussian(luminance, 3.0))
    return lab_to_rgb(lab)


def contrast_change(x: FloatImage, factor: float, rng: np.random.Generator) -> FloatImage:
    # Contrast scaled by ``factor`` in logit space about the image's mean luma: factor > 1 raises
    # contrast, < 1 washes the image out. Logit space keeps [0, 1] without hard clipping, so a
    # stronger increase always moves pixels further (a linear stretch saturates and would not).
    # Levels alternate between the two directions, getting stronger.
    eps = 1.0 / 512.0
    logit = np.log((x + eps) / (1.0 + eps - x))
    pivot = float(np.log((_luma(x).mean() + eps) / (1.0 + eps - _luma(x).mean())))
    return 1.0 / (1.0 + np.exp(-(pivot + (logit - pivot) * factor)))


# Upper bounds of the nested random draws (the largest level value of the type).
_MAX_PATCHES = 100
_MAX_BLOCKS = 10
# JPEG qualities with about the bit rate of each J2K ratio, for the no-OpenJPEG fallback.
_JPEG_FOR_J2K_RATIO = {16.0: 45, 32.0: 25, 45.0: 15, 120.0: 5, 170.0: 3}

_SPECS: tuple[tuple[str, int, str, str, tuple[float, ...], str, DistortFn, bool], ...] = (
    ("gaussian_blur", 1, "blur", "sigma (px)", (0.5, 1.0, 2.0, 3.0, 5.0),
     "Gaussian low-pass filter.", gaussian_blur, False),
    ("lens_blur", 2, "blur", "disk radius (px)", (1, 2, 4, 6, 8),
     "Defocus: convolution with an anti-aliased disk.", lens_blur, False),
    ("motion_blur", 3, "blur", "line length (px)", (2, 4, 6, 9, 13),
     "Linear motion PSF at a random angle.", motion_blur, True),
    ("color_diffusion", 4, "color", "amount (a*b* sigma = 1.5a+2 px, gain = 1+a/4)", (1, 3, 6, 8, 12),
     "Blurred and amplified chroma (a*b*).", color_diffusion, False),
    ("color_shift", 5, "color", "green displacement (px)", (1, 3, 6, 8, 12),
     "Green channel displaced (smeared) near edges, random direction.", color_shift, True),
    ("color_quantization", 6, "color", "palette size (colours)", (64, 48, 32, 16, 8),
     "Median-cut palette with Floyd-Steinberg dithering.", color_quantization, False),
    ("color_saturation_hsv", 7, "color", "HSV saturation factor", (0.4, 0.2, 0.1, 0.0, -0.4),
     "Desaturation in HSV (color saturation 1); negative swings to the complement.",
     color_saturation_hsv, False),
    ("color_saturation_lab", 8, "color", "a*b* gain", (1.5, 2.0, 3.0, 6.0, 9.0),
     "Over-saturation in CIELAB (color saturation 2).", color_saturation_lab, False),
    ("jpeg2000", 9, "compression", "compression ratio", (16, 32, 45, 120, 170),
     "JPEG 2000 (OpenJPEG through Pillow), 9/7 wavelet.", jpeg2000, False),
    ("jpeg", 10, "compression", "JPEG quality", (43, 36, 24, 7, 4),
     "Baseline JPEG (libjpeg through Pillow), 4:2:0 chroma.", jpeg, False),
    ("white_noise", 11, "noise", "variance ([0,1] scale)", (0.001, 0.002, 0.003, 0.005, 0.01),
     "Additive Gaussian noise, independent per RGB channel.", white_noise, True),
    ("white_noise_color", 12, "noise", "luma variance (chroma 5x)", (0.0001, 0.0005, 0.001, 0.002, 0.003),
     "Additive Gaussian noise in YCbCr, stronger in the colour components.", white_noise_color, True),
    ("impulse_noise", 13, "noise", "density (fraction of values)", (0.001, 0.005, 0.01, 0.02, 0.03),
     "Salt-and-pepper noise per channel value.", impulse_noise, True),
    ("multiplicative_noise", 14, "noise", "variance", (0.001, 0.005, 0.01, 0.02, 0.05),
     "Speckle: x * (1 + n).", multiplicative_noise, True),
    ("denoise", 15, "noise", "noise variance before denoising", (0.001, 0.002, 0.003, 0.005, 0.01),
     "White noise removed by an adaptive Wiener filter (5x5).", denoise, True),
    ("brighten", 16, "brightness", "mid-tone lift a (curve k = 2a)", (0.1, 0.2, 0.4, 0.7, 1.1),
     "Non-linear brightening on RGB and L*, blended.", brighten, False),
    ("darken", 17, "brightness", "mid-tone drop a (curve k = -2a)", (0.05, 0.1, 0.2, 0.4, 0.8),
     "Non-linear darkening on RGB.", darken, False),
    ("mean_shift", 18, "brightness", "intensity offset ([0,1] scale)", (0.05, -0.08, 0.11, -0.14, 0.17),
     "Constant offset, alternating brighter/darker with growing size.", mean_shift, False),
    ("jitter", 19, "spatial", "displacement std (px, 5 passes)", (0.05, 0.1, 0.2, 0.5, 1.0),
     "Random per-pixel displacement.", jitter, True),
    ("non_eccentricity_patch", 20, "spatial", "patch count (16x16)", (20, 40, 60, 80, 100),
     "Patches copied to nearby positions.", non_eccentricity_patch, True),
    ("pixelate", 21, "spatial", "strength s (scale 0.95 - s^0.6)", (0.01, 0.05, 0.1, 0.2, 0.5),
     "Box down-scale, nearest up-scale.", pixelate, False),
    ("quantization", 22, "spatial", "levels per channel", (20, 16, 13, 10, 7),
     "Uniform per-channel quantisation (posterisation).", quantization, False),
    ("color_block", 23, "spatial", "block count (32x32)", (2, 4, 6, 8, 10),
     "Random flat colour squares.", color_block, True),
    ("high_sharpen", 24, "sharpness_contrast", "unsharp gain (sigma 3 px, on L*)", (1, 2, 3, 6, 12),
     "Over-sharpening with halos.", high_sharpen, False),
    ("contrast_change", 25, "sharpness_contrast", "contrast factor (logit space, about mean luma)",
     (1.2, 0.75, 1.5, 0.5, 2.6), "Linear contrast change, alternating up/down with growing size.",
     contrast_change, False),
)

DISTORTIONS: dict[str, DistortionType] = {
    name: DistortionType(name, kid, group, parameter, tuple(float(v) for v in levels), description, fn, random)
    for name, kid, group, parameter, levels, description, fn, random in _SPECS
}
#: KADID-10k id (1..25) -> our name.
KADID_ID_TO_NAME: dict[int, str] = {d.kadid_id: d.name for d in DISTORTIONS.values()}
LEVELS = (1, 2, 3, 4, 5)


def list_distortions(group: str | None = None) -> list[str]:
    """Distortion names in KADID-10k id order, optionally of one group."""
    return [d.name for d in sorted(DISTORTIONS.values(), key=lambda d: d.kadid_id)
            if group is None or d.group == group]


def get_distortion(name: str) -> DistortionType:
    try:
        return DISTORTIONS[name]
    except KeyError:
        raise ValueError(f"unknown distortion {name!r}; choose one of: {', '.join(list_distortions())}") from None


def distort(image: np.ndarray, type_name: str, level: int, seed: int = 0) -> np.ndarray:
    """Apply distortion ``type_name`` at ``level`` (1 = mildest .. 5 = strongest) to an HxWx3 uint8 image.

    Deterministic for a given ``seed``. Returns a new HxWx3 uint8 array of the same shape.
    """
    kind = get_distortion(type_name)
    if level not in LEVELS:
        raise ValueError(f"level must be one of 1..5, got {level!r}")
    x = load_image(image).astype(np.float32) / 255.0  # validates dtype/shape with readable errors
    rng = np.random.default_rng(seed)
    out = kind.fn(x, kind.levels[level - 1], rng)
    return _to_uint8(out)


def iter_distortions(image: np.ndarray, types: Iterable[str] | None = None, levels: Iterable[int] = LEVELS,
                     seed: int = 0) -> Iterator[tuple[str, int, np.ndarray]]:
    """Yield ``(type_name, level, distorted)`` for every type (default: all 25) and level.

    The seed is the same for every level of a type, so its levels share their random draws (the
    sensitivity suite then sees one noise field growing, not five unrelated ones).
    """
    for name in types if types is not None else list_distortions():
        for level in levels:
            yield name, level, distort(image, name, level, seed)
