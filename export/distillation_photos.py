"""Photos the quantization-aware fine-tuning sees besides the calibration photos (``--qat-images``).

The fine-tuning (:mod:`edge_iqa.export.qat`) trains the INT8 network to give the FP32 network's
scores; it needs no MOS, so any photos will do, and photos like the ones the bundle will score
(a camera maker's own, unlabelled) are the natural choice: with only the 128 calibration photos the
fine-tuning fits those photos' crops (twice the steps made the validation photos worse). What 2,000
more photos did on the default model is in docs/quantization.md, "More photos for the fine-tuning".

Everything is checked before any work: each file opens as an image, and none is one of the export's
held-out validation photos (by content), whose scores would otherwise no longer be an honest
measure of the INT8 network.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from edge_iqa.checksums import sha256_file, sha256_hex
from edge_iqa.collection.inputs import check_inputs, expand_inputs
from edge_iqa.errors import ExportError


@dataclass(frozen=True)
class DistillationPhotos:
    """The extra photos and what the manifest records of them (their count and a digest of their
    contents, so that a rebuild can tell whether it saw the same photos)."""

    paths: tuple[Path, ...]
    sha256: str

    def record(self) -> dict[str, object]:
        return {"extra_photos": len(self.paths), "extra_photos_sha256": self.sha256}


def distillation_photos(inputs: Sequence[str], held_out: Sequence[Path]) -> DistillationPhotos:
    """The photos named by ``inputs`` (folders, list files and globs, as ``edge-iqa collect`` takes
    them), checked: every one an image, none of them one of ``held_out``."""
    check_inputs(inputs)
    paths = tuple(Path(p) for p in expand_inputs(inputs))
    if not paths:
        raise ExportError(f"--qat-images {' '.join(inputs)}: names no image files; give a folder of photos, a "
                          "list file of photo paths or a glob")
    unreadable = [p for p in paths if not _opens_as_image(p)]
    if unreadable:
        shown = ", ".join(str(p) for p in unreadable[:3]) + (f" and {len(unreadable) - 3} more"
                                                             if len(unreadable) > 3 else "")
        raise ExportError(f"--qat-images: {len(unreadable)} file(s) are not readable images ({shown}); remove "
                          "them from what --qat-images names")
    digests = {path: sha256_file(path) for path in paths}
    held_out_digests = {sha256_file(p) for p in held_out}
    leaked = [p for p in paths if digests[p] in held_out_digests]
    if leaked:
        raise ExportError(f"--qat-images: {len(leaked)} photo(s) are the export's held-out validation photos (e.g. "
                          f"{leaked[0]}), which judge the INT8 network and must not be trained on; leave the "
                          "shipped calibration_data folder out of --qat-images")
    return DistillationPhotos(paths, sha256_hex(sorted(digests.values())))


def _opens_as_image(path: Path) -> bool:
    try:
        with Image.open(path) as image:
            image.size  # noqa: B018 - the header is parsed here; the pixels are decoded during training
    except (OSError, UnidentifiedImageError, ValueError):
        return False
    return True

