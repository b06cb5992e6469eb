"""Parity between PyTorch and an exported graph, on real (preprocessed) calibration images.

Both sides are :class:`~edge_iqa.runtime.scorer.Scorer` objects on the runtime's one scoring path:
the PyTorch reference on the torch backend (:func:`reference_scorer`), the artifact loaded from
its (staged) bundle by :func:`edge_iqa.runtime.load` (:mod:`edge_iqa.export.staging`).
:func:`raw_scores` feeds either the same prepared images, so the same comparison serves the FP32
gate and the drift record of FP16/INT8 artifacts. Scores are compared raw (before the checkpoint's
output transform), one per image (multi-crop models average their crops, as at run time).
"""

from __future__ import annotations

import math

import numpy as np
from torch import nn

from edge_iqa.data.preprocess import PreprocessSpec
from edge_iqa.errors import ParityError
from edge_iqa.export.calibration import PreparedImages
from edge_iqa.export.targets import ParitySpec
from edge_iqa.metrics import drift
from edge_iqa.runtime.backends.base import DEPTH_INPUT, IMAGE_INPUT
from edge_iqa.runtime.scorer import Scorer


def raw_scores(scorer: Scorer, images: PreparedImages) -> np.ndarray:
    """One raw score per image (crops averaged, before the output transform) through the runtime's
    one scoring path, :meth:`Scorer.score_tensor`; a two-input network gets its depth rows too."""
    depth = images.rows(DEPTH_INPUT) if scorer.needs_depth else None
    return scorer.score_tensor(images.rows(IMAGE_INPUT), depth, raw=True)


def reference_scorer(model: nn.Module, spec: PreprocessSpec, input_names: tuple[str, ...]) -> Scorer:
    """The PyTorch FP32 reference: the in-memory network on the torch backend."""
    from edge_iqa.runtime.backends.torch import module_scorer

    return module_scorer(model, spec, inputs=input_names)


def compare(candidate: np.ndarray, reference: np.ndarray, mos: np.ndarray | None = None) -> dict[str, float | None]:
    """max/mean abs diff, rank agreement (SROCC between the two score lists) and, with MOS, the
    delta SROCC against MOS. NaN (a constant score list) is recorded as null."""
    result = drift(candidate, reference, mos).to_dict()
    return {k: (None if isinstance(v, float) and math.isnan(v) else float(v)) for k, v in result.items()}


def parity_gate(candidate: np.ndarray, reference: np.ndarray, spec: ParitySpec, what: str) -> dict[str, object]:
    """Record of the comparison; raises :class:`ParityError` when it fails the gate."""
    record: dict[str, object] = {**compare(candidate, reference), "images": len(reference), "atol": spec.atol,
                                 "min_rank_agreement": spec.min_rank_agreement}
    agreement = record["rank_agreement"]
    failures = []
    if not record["max_abs_diff"] <= spec.atol:  # also catches NaN scores
        failures.append(f"max |score difference| {record['max_abs_diff']:.3g} > {spec.atol:g}")
    if agreement is not None and agreement < spec.min_rank_agreement:
        failures.append(f"rank agreement {agreement:.4f} < {spec.min_rank_agreement}")
    record["passed"] = not failures
    if failures:
        raise ParityError(f"{what} does not match PyTorch on {len(reference)} calibration images: "
                          f"{'; '.join(failures)}. No bundle was written. An unsupported op or a wrong attention "
                          "rewrite is the usual cause: try another attention_form, or report the model")
    return record
