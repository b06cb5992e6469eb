"""IQA datasets: label files, seeded splits, and a torch ``Dataset`` over the one preprocessing spec.

A label file is either

- a CSV with a header holding at least ``image`` (path relative to the CSV, or to ``image_root``)
  and ``mos``; other columns are ignored (the project's format, e.g. ``shared/datasets/clive``),
- BIQ2021's CSVs as published (header ``Image Name,MOS,,``: ``Image Name`` is the image column,
  empty extra columns are ignored; ``scripts/prepare_biq2021.py`` turns a clone into our format), or
- a pyiqa-style meta file: image path in the first column, MOS in the second, header optional,
  comma-, tab- or whitespace-separated.

Everything malformed raises :class:`edge_iqa.errors.DatasetError` saying which file, which line
and what to do. Decoding goes through :func:`edge_iqa.data.imageio.load_image` and tensors through
:meth:`PreprocessSpec.apply`, so training sees exactly the pixels deployment sees. Training
augmentation is random crops and horizontal flips only: both keep the image's quality (no colour
jitter, blur, rescaling or compression, which would change the very thing the MOS measures).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from edge_iqa.data.imageio import load_image
from edge_iqa.data.preprocess import PreprocessSpec
from edge_iqa.errors import DatasetError

_MAX_LISTED = 5


@dataclass(frozen=True)
class LabeledImage:
    """One image of a dataset with its mean opinion score."""

    path: Path
    mos: float


@dataclass(frozen=True)
class LabelFile:
    """A parsed label file: the images in file order and where they came from."""

    source: Path
    items: tuple[LabeledImage, ...]

    def __len__(self) -> int:
        return len(self.items)

    @property
    def paths(self) -> list[Path]:
        return [item.path for item in self.items]

    @property
    def mos(self) -> np.ndarray:
        return np.asarray([item.mos for item in self.items], dtype=np.float64)

    def subset(self, indices: Sequence[int] | np.ndarray) -> LabelFile:
        return LabelFile(self.source, tuple(self.items[int(i)] for i in indices))


# Header names that other datasets use for our ``image`` column (lower case).
IMAGE_COLUMN_ALIASES = {"image name": "image", "image_name": "image"}


@dataclass(frozen=True)
class CaseMismatch:
    """A listed image that is missing, while a file whose name differs only in case exists."""

    listed: Path
    on_disk: Path


def case_mismatched_names(missing: Sequence[Path]) -> list[CaseMismatch]:
    """For each missing path, the file in its folder whose name equals it up to letter case, if any."""
    by_folder: dict[Path, dict[str, str]] = {}
    found = []
    for path in missing:
        folder = path.parent
        if folder not in by_folder:
            names = [p.name for p in folder.iterdir()] if folder.is_dir() else []
            by_folder[folder] = {name.lower(): name for name in names}
        real = by_folder[folder].get(path.name.lower())
        if real is not None and real != path.name:
            found.append(CaseMismatch(path, folder / real))
    return found


def _listing(values: Sequence[object]) -> str:
    shown = ", ".join(str(v) for v in values[:_MAX_LISTED])
    return shown + (f" ... (+{len(values) - _MAX_LISTED} more)" if len(values) > _MAX_LISTED else "")


def _split_rows(text: str, name: str) -> list[list[str]]:
    """Rows of a comma, tab or whitespace separated file (blank lines and # comments dropped)."""
    lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if not lines:
        raise DatasetError(f"{name}: the label file is empty; it needs a header `image,mos` and one row per image")
    if any("," in line for line in lines[:5]):
        rows = list(csv.reader(io.StringIO("\n".join(lines))))
    elif any("\t" in line for line in lines[:5]):
        rows = [line.split("\t") for line in lines]
    else:
        rows = [line.split() for line in lines]
    return [[field.strip() for field in row] for row in rows]


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_labels(path: str | Path, image_root: str | Path | None = None, check_images: bool = True) -> LabelFile:
    """Parse a label file (see the module docstring) into absolute image paths and MOS values.

    Args:
        path: the CSV / meta file.
        image_root: folder the image paths are relative to (default: the label file's folder;
            pyiqa meta files usually need the dataset root here).
        check_images: raise if any listed image file does not exist.
    """
    source = Path(path)
    if not source.is_file():
        raise DatasetError(f"{source}: no such label file; pass the dataset CSV (columns image,mos)")
    try:
        text = source.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{source}: not a text file ({exc}); pass a CSV with columns image,mos") from exc
    rows = _split_rows(text, str(source))
    header = [IMAGE_COLUMN_ALIASES.get(field.lower(), field.lower()) for field in rows[0]]
    if "image" in header and "mos" in header:
        image_col, mos_col, body, first_line = header.index("image"), header.index("mos"), rows[1:], 2
    elif len(rows[0]) >= 2 and not _is_number(rows[0][1]):
        # A header that does not name `image`/`mos`: a pyiqa meta file (path first, MOS second),
        # unless the header clearly belongs to a CSV of ours that lacks a column.
        if "image" in header or "mos" in header or len(rows) == 1:
            missing = [c for c in ("image", "mos") if c not in header]
            raise DatasetError(
                f"{source}: the header {rows[0]} lacks column(s) {missing}; a dataset CSV needs `image` "
                "(path relative to the CSV) and `mos`"
            )
        image_col, mos_col, body, first_line = 0, 1, rows[1:], 2
    else:
        image_col, mos_col, body, first_line = 0, 1, rows, 1
    if not body:
        raise DatasetError(f"{source}: has a header but no rows; add one row per image")

    root = Path(image_root) if image_root is not None else source.parent
    items: list[LabeledImage] = []
    short, bad_mos = [], []
    needed = max(image_col, mos_col) + 1
    for line_no, row in enumerate(body, start=first_line):
        if len(row) < needed:
            short.append(line_no)
            continue
        try:
            mos = float(row[mos_col])
        except ValueError:
            bad_mos.append(f"line {line_no}: {row[mos_col]!r}")
            continue
        if not math.isfinite(mos):
            bad_mos.append(f"line {line_no}: {row[mos_col]!r}")
            continue
        items.append(LabeledImage(root / row[image_col], mos))
    if short:
        raise DatasetError(f"{source}: {len(short)} row(s) have fewer than {needed} fields (lines {_listing(short)})")
    if bad_mos:
        raise DatasetError(f"{source}: {len(bad_mos)} MOS value(s) are not finite numbers ({_listing(bad_mos)})")
    if check_images:
        missing_files = [str(item.path) for item in items if not item.path.is_file()]
        case_mismatches = case_mismatched_names([item.path for item in items if not item.path.is_file()])
        if case_mismatches:
            raise DatasetError(
                f"{source}: {len(case_mismatches)} listed image name(s) differ only in letter case from the file "
                f"on disk ({_listing([f'{m.listed} -> {m.on_disk}' for m in case_mismatches])}); a case-sensitive "
                "file system treats them as different files. Fix the CSV, or for BIQ2021 run "
                "`python scripts/prepare_biq2021.py CLONE_DIR`, which writes corrected CSVs and reports each fix"
            )
        if missing_files:
            raise DatasetError(
                f"{source}: {len(missing_files)} of {len(items)} images are missing ({_listing(missing_files)}); "
                f"image paths are read relative to {root} (use image_root= / --image-root to change it)"
            )
    if len(items) < 2:
        raise DatasetError(f"{source}: needs at least 2 labelled images, found {len(items)}")
    return LabelFile(source, tuple(items))


# --- splits -------------------------------------------------------------------------------------
def train_val_split(n: int, val_fraction: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Seeded random split of ``range(n)`` into sorted (train, val) index arrays.

    ``val_fraction == 0`` puts everything in train (val empty). Deterministic given ``seed``."""
    if not 0.0 <= val_fraction < 1.0:
        raise DatasetError(f"val_fraction must be in [0, 1), got {val_fraction}")
    order = np.random.default_rng(seed).permutation(n)
    n_val = int(round(n * val_fraction))
    if val_fraction > 0 and not 1 <= n_val < n:
        raise DatasetError(f"cannot hold out {val_fraction:.0%} of {n} images")
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def kfold_splits(n: int, folds: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Seeded k-fold: ``folds`` (train, val) pairs whose val parts are disjoint and cover ``range(n)``."""
    if folds < 2 or folds > n:
        raise DatasetError(f"folds must be between 2 and the number of images ({n}), got {folds}")
    parts = np.array_split(np.random.default_rng(seed).permutation(n), folds)
    return [(np.sort(np.concatenate(parts[:k] + parts[k + 1:])), np.sort(parts[k])) for k in range(folds)]


# --- normalisation of the MOS scale ----------------------------------------------------------------
def mos_transform(mos: np.ndarray) -> dict[str, float]:
    """The output transform ``score = raw * scale + offset`` that maps [0, 1] back onto the MOS range."""
    low, high = float(np.min(mos)), float(np.max(mos))
    scale = high - low
    if scale <= 0:
        raise DatasetError("all MOS values are equal; nothing to learn")
    return {"scale": scale, "offset": low}


def normalise_mos(mos: np.ndarray, transform: dict[str, float]) -> np.ndarray:
    return (np.asarray(mos, dtype=np.float64) - transform["offset"]) / transform["scale"]


# --- torch dataset ----------------------------------------------------------------------------------
def random_crop_flip(image: np.ndarray, crop: tuple[int, int], rng: np.random.Generator,
                     flip: bool = True) -> np.ndarray:
    """A random ``crop`` (h, w) of an HxWx3 array, mirrored left-right with probability 1/2."""
    h, w = image.shape[:2]
    ch, cw = crop
    if h < ch or w < cw:
        raise DatasetError(f"image {h}x{w} is smaller than the training crop {ch}x{cw}")
    top, left = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    out = image[top : top + ch, left : left + cw]
    if flip and rng.random() < 0.5:
        out = out[:, ::-1]
    return np.ascontiguousarray(out)


class IQAImageDataset(Dataset):
    """Images of a :class:`LabelFile` as network input, with normalised MOS targets.

    ``train=True``: resize by the spec, then a random ``crop_size`` crop (default: the spec's input
    size) and a random horizontal flip -> (3, H, W). ``train=False``: exactly ``spec.apply`` ->
    (num_crops, 3, H, W), as deployment. Random draws come from ``(seed, epoch, index)`` so results
    do not depend on the number of workers or the order of access.
    """

    def __init__(self, labels: LabelFile, spec: PreprocessSpec, transform: dict[str, float] | None = None,
                 train: bool = False, crop_size: tuple[int, int] | None = None, seed: int = 0) -> None:
        self.labels, self.spec, self.train = labels, spec, train
        self.transform = transform or mos_transform(labels.mos)
        self.targets = normalise_mos(labels.mos, self.transform).astype(np.float32)
        self.crop_size = tuple(crop_size or spec.input_size)
        # The crop is taken here; the spec then only scales and normalises it.
        self._crop_spec = dataclasses.replace(spec, input_size=self.crop_size, resize="none", crop="none")
        self.seed, self.epoch = seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = load_image(self.labels.items[index].path)
        if self.train:
            rng = np.random.default_rng((self.seed, self.epoch, index))
            crop = random_crop_flip(self.spec.resize_image(image), self.crop_size, rng)
            array = self._crop_spec.to_tensor_batch(crop)[0]
        else:
            array = self.spec.apply(image)
        return torch.from_numpy(array), torch.tensor(self.targets[index])


__all__ = [
    "CaseMismatch", "IQAImageDataset", "LabelFile", "LabeledImage", "case_mismatched_names", "kfold_splits",
    "mos_transform", "normalise_mos", "random_crop_flip", "read_labels", "train_val_split",
]
