"""Parity between PyTorch and an exported graph, on real (preprocessed) calibration images.

The PyTorch reference is a :class:`~edge_iqa.runtime.scorer.Scorer` on the torch backend
(:func:`reference_scorer`, :func:`raw_scores`). A *runner* is a ``feeds -> raw scores`` callable
(ONNX Runtime session, compiled OpenVINO model), so the same comparison serves the FP32 gate and the drift record of
FP16/INT8 artifacts. Scores are compared raw (before the checkpoint's output transform), one per
image (multi-crop models average their crops, as at run time).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
from torch import nn

from edge_iqa.data.preprocess import PreprocessSpec
from edge_iqa.errors import ParityError
from edge_iqa.export.calibration import depth_proxy, model_feeds
from edge_iqa.export.targets import ParitySpec
from edge_iqa.metrics import drift
from edge_iqa.runtime.scorer import Scorer

Feeds = dict[str, np.ndarray]
Runner = Callable[[Feeds], np.ndarray]
CHUNK = 8  # crops per call: the batch dimension is dynamic, keep memory small


def score_images(run: Runner, stacks: list[np.ndarray], input_names: tuple[str, ...]) -> np.ndarray:
    """One raw score per image: each (num_crops, 3, H, W) stack through ``run``, crops averaged."""
    crops = np.concatenate(stacks)
    outputs = []
    for start in range(0, len(crops), CHUNK):
        outputs.append(np.asarray(run(model_feeds(crops[start : start + CHUNK], input_names))).reshape(-1))
    raw = np.concatenate(outputs).astype(np.float64)
    return raw.reshape(len(stacks), -1).mean(axis=1)


def raw_scores(scorer: Scorer, stacks: list[np.ndarray]) -> np.ndarray:
    """One raw score per image (crops averaged, before the output transform) through the runtime's
    one scoring path, :meth:`Scorer.score_tensor`; a two-input network gets its depth rows too."""
    rows = np.concatenate(stacks)
    return scorer.score_tensor(rows, depth_proxy(rows) if scorer.needs_depth else None, raw=True)


def reference_scorer(model: nn.Module, spec: PreprocessSpec, input_names: tuple[str, ...]) -> Scorer:
    """The PyTorch FP32 reference: the in-memory network on the torch backend."""
    from edge_iqa.runtime.backends.torch import module_scorer

    return module_scorer(model, spec, inputs=input_names)


def onnxruntime_runner(path: Path, threads: int = 0) -> Runner:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}

    def run(feeds: Feeds) -> np.ndarray:
        return session.run(None, {k: v for k, v in feeds.items() if k in names})[0]

    return run


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
