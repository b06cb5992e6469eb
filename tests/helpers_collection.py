"""Photo collections for the collection tests: small real photos (the committed calibration set,
downscaled), hard-linked to many paths, mixed with broken files of every kind the decoder refuses."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from tests.helpers_images import CALIBRATION
from tests.helpers_runtime import TinyNet, build_bundle

#: Broken file kinds -> the error type the table must record for them.
BROKEN_KINDS = {
    "empty": "ImageDecodeError",
    "truncated": "ImageDecodeError",
    "garbage": "ImageDecodeError",
    "tiny": "ImageTooSmallError",
    "missing": "ImageDecodeError",
}


@dataclass(frozen=True)
class Collection:
    good: list[Path]
    broken: dict[Path, str]  # path -> expected error_type
    listing: Path  # a .txt list of every path, good and broken, in a shuffled order

    @property
    def all(self) -> list[Path]:
        return [*self.good, *self.broken]


def small_photos(folder: Path, count: int, side: int = 128) -> list[Path]:
    """``count`` distinct real photos, downscaled to ``side`` px (JPEG), written once into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    sources = sorted(CALIBRATION.glob("*"))[:count]
    out = []
    for source in sources:
        target = folder / f"{source.stem}.jpg"
        if not target.exists():
            with Image.open(source) as image:
                image.convert("RGB").resize((side, side), Image.Resampling.BILINEAR).save(target, quality=90)
        out.append(target)
    return out


def make_collection(root: Path, good: int, broken: int, *, distinct: int = 24, seed: int = 0) -> Collection:
    """``good`` photo paths (hard links to ``distinct`` real photos, in nested folders) and ``broken``
    broken files cycling through :data:`BROKEN_KINDS`; a shuffled list file of all of them."""
    originals = small_photos(root / "originals", distinct)
    rng = np.random.default_rng(seed)
    good_paths = []
    for i in range(good):
        target = root / "photos" / f"d{i % 7}" / f"p{i:06d}.jpg"
        target.parent.mkdir(parents=True, exist_ok=True)
        os.link(originals[i % len(originals)], target)
        good_paths.append(target)
    jpeg = originals[0].read_bytes()
    broken_paths: dict[Path, str] = {}
    kinds = list(BROKEN_KINDS)
    for i in range(broken):
        kind = kinds[i % len(kinds)]
        target = root / "photos" / "bad" / f"{kind}{i:05d}.jpg"
        target.parent.mkdir(parents=True, exist_ok=True)
        if kind == "empty":
            target.write_bytes(b"")
        elif kind == "truncated":
            target.write_bytes(jpeg[: len(jpeg) // 2])
        elif kind == "garbage":
            target.write_bytes(rng.integers(0, 256, 300, dtype=np.uint8).tobytes())
        elif kind == "tiny":
            Image.new("RGB", (8, 8), (120, 90, 60)).save(target)
        # "missing": listed, never written
        broken_paths[target] = BROKEN_KINDS[kind]
    every = [*good_paths, *broken_paths]
    order = rng.permutation(len(every))
    listing = root / "list.txt"
    listing.write_text("".join(f"{every[i]}\n" for i in order))
    return Collection(good_paths, broken_paths, listing)


def tiny_bundle(root: Path) -> Path:
    """The tiny known network as a real ONNX Runtime bundle (fast: about a millisecond an image)."""
    return build_bundle(root / "bundle", TinyNet.random(0))


def read_rows(table: Path) -> list[dict]:
    import pyarrow.parquet as pq

    return pq.read_table(table).to_pylist()
