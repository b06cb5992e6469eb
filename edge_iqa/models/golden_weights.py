"""Deterministic weights of the seed models (TOPIQ, GlintIQA, DGIQA, LoDa): the reference fixtures'
own rule (``deterministic_weights.py``) applied to each model's recorded state-dict layout
(``<model>_keys.txt``). The golden tests compare outputs against the fixtures with these weights,
and the seed-bundle scripts export with them (trained weights of the seed models are not shipped).

The fixtures are repository data (``tests/fixtures/reference``), not part of the installed package;
pass ``reference_dir`` to read them from elsewhere.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import torch

REFERENCE_DIR = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "reference"


def _weights_module(reference_dir: Path) -> Any:
    spec = importlib.util.spec_from_file_location("deterministic_weights", reference_dir / "deterministic_weights.py")
    if spec is None or spec.loader is None or not (reference_dir / "deterministic_weights.py").is_file():
        raise FileNotFoundError(f"{reference_dir}: the reference fixtures (deterministic_weights.py) are not here; "
                                "they ship with the repository, not the package")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def reference_entries(model: str, reference_dir: Path = REFERENCE_DIR) -> list[tuple[str, tuple[int, ...], str]]:
    """(name, shape, dtype) of the reference state_dict, in order."""
    return _weights_module(reference_dir).parse_keys_file(str(reference_dir / f"{model}_keys.txt"))


def deterministic_state_dict(model: str, reference_dir: Path = REFERENCE_DIR) -> dict[str, torch.Tensor]:
    """The reference state_dict filled by the deterministic rule, as torch tensors."""
    arrays = _weights_module(reference_dir).deterministic_state_dict(reference_entries(model, reference_dir))
    # np.array (not ascontiguousarray) keeps 0-d entries such as num_batches_tracked 0-d.
    return {name: torch.from_numpy(np.array(value, order="C")) for name, value in arrays.items()}
