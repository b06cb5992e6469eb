"""The one sha256 helper: files (bundles, checkpoints, calibration photos) and short content keys
(cache names, machine and image-list fingerprints). Torch-free."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable

CHUNK = 1 << 20


def sha256_file(path: str | os.PathLike, chunk: int = CHUNK) -> str:
    """Hex sha256 of a file, read in ``chunk``-byte blocks (memory stays flat for big weights)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def sha256_hex(*parts: bytes | str | Iterable[bytes | str], length: int | None = None) -> str:
    """Hex sha256 of ``parts`` fed in order (str as UTF-8; an iterable of parts is walked), cut to
    ``length`` characters when given: the key of a cache entry or a fingerprint."""
    digest = hashlib.sha256()
    for part in parts:
        for piece in ([part] if isinstance(part, (bytes, str)) else part):
            digest.update(piece.encode() if isinstance(piece, str) else piece)
    return digest.hexdigest()[:length] if length else digest.hexdigest()
