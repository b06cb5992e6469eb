"""Finding ImageNet backbone weights: by path, locally, or from the hub when a network exists.

Search order for a file name such as ``mobilenet_v2-b0353104.pth``:

1. the path the user gives (``backbone_weights=PATH`` / ``--backbone-weights``);
2. ``$EDGE_IQA_WEIGHTS_DIR/<file>``;
3. ``shared/weights/<file>`` in the working directory or any parent (the project's offline copies);
4. torch hub's cache (``$TORCH_HOME/hub/checkpoints``);
5. a download from the published URL through ``torch.hub`` (needs a network).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from edge_iqa.errors import CheckpointError
from edge_iqa.models.checkpoint import load_state_dict_file


def find_weights_file(filename: str, user_path: str | os.PathLike | None = None, url: str | None = None) -> Path:
    if user_path is not None:
        path = Path(user_path)
        if not path.is_file():
            raise CheckpointError(f"{path}: backbone weights not found")
        return path
    candidates: list[Path] = []
    if env := os.environ.get("EDGE_IQA_WEIGHTS_DIR"):
        candidates.append(Path(env) / filename)
    for parent in [Path.cwd(), *Path.cwd().parents]:
        candidates.append(parent / "shared" / "weights" / filename)
    candidates.append(Path(torch.hub.get_dir()) / "checkpoints" / filename)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    if url is not None:
        try:
            torch.hub.load_state_dict_from_url(url, file_name=filename, progress=False, map_location="cpu")
            return Path(torch.hub.get_dir()) / "checkpoints" / filename
        except Exception as exc:  # noqa: BLE001 - URLError, HTTPError, timeouts: all mean 'offline'
            reason = f"download from {url} failed ({type(exc).__name__})"
    else:
        reason = "no download URL is known"
    raise CheckpointError(
        f"ImageNet weights {filename} not found locally and {reason}. Pass backbone_weights=PATH "
        "(CLI: --backbone-weights PATH) or set EDGE_IQA_WEIGHTS_DIR to a folder holding the file"
    )


def load_backbone_state_dict(
    filename: str, user_path: str | os.PathLike | None = None, url: str | None = None
) -> dict[str, torch.Tensor]:
    """The state dict of a backbone weight file, found as described in the module docstring."""
    return load_state_dict_file(find_weights_file(filename, user_path, url))
