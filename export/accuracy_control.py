"""INT8 within an accuracy budget: automatic mixed precision, one mechanism for every runtime.

When the fully quantized model misses the target's budget (``accuracy_budget.AccuracyBudget``:
|delta SROCC| against MOS, and optionally each photo's |score difference| on the MOS scale, FP32 as
the reference) on the *validation* images (the held-out shipped images, never a calibration image),
export gives the blocks whose quantization hurts most back to floating point, one at a time, until
the budget holds, ``max_kept_blocks`` were given back, or nothing is left:

    blocks      ONNX nodes grouped by PyTorch module path (``graph_scopes.module_paths``): a module
                with at most MAX_BLOCK_COMPUTE Conv/MatMul/Gemm nodes is one block, a larger one
                is split into its children (MobileNetV2 stages, attention blocks, the head: tens of
                blocks, not thousands of nodes)
    sensitivity every block removed from quantization on its own, scored on ``sensitivity_images``
                validation images against the cached FP32 scores: the first ones, or, under a
                per-photo budget, the photos full INT8 moves most (the ones that break it)
    greedy      blocks given back in order of sensitivity; each step re-measured on all validation
                images (a block that does not lower the worst budget ratio goes back to INT8); stops
                at the first step within the budget, at ``max_kept_blocks`` kept or 2 x that many tried

The per-candidate artifacts come from each backend's ``candidate_builder`` without recalibrating:
ONNX Runtime ``nodes_to_exclude`` with its calibration cache, OpenVINO the NNCF model with the
FakeQuantize ops in front of the block bypassed, modelopt's TensorRT Q/DQ graph with the Q/DQ pairs
in front of the block removed (``strip_qdq``). The final artifact is built by the backend with the
chosen exclusions and measured again by the pipeline: ORT ``nodes_to_exclude`` from the same cache and
OpenVINO's ``give_back`` make exactly the candidate the search measured; modelopt recalibrates. With
a score correction (``export/score_correction.py``) every candidate and the final artifact get their
own fit before they are measured.

Every candidate is scored the way the final bundle is: ``runtime.load`` of its folder with the
staged bundle's manifest, the model file replaced (:func:`edge_iqa.export.staging.load_artifact`;
TensorRT through the same ONNX Runtime stand-in bundle as the gate), so the search ranks blocks on
the runtime and compile settings a user gets, not on a private runner.

Sensitivity without a per-photo budget is ranked on rank agreement with the FP32 scores (SROCC
between the two score lists), ties broken by |delta SROCC| and mean |score difference|: over a few
images, delta SROCC against MOS moves in coarse steps and by chance, whereas agreement with the FP32
ranking measures the same thing against a noise-free target. Under a per-photo budget that full
INT8 misses, it is ranked on the drop of mean |score difference| over the worst photos first.

(OpenVINO used NNCF's ``quantize_with_accuracy_control`` until it was shown to crash on the
default model; see docs/quantization.md for the root cause.)
"""

from __future__ import annotations

import itertools
import shutil
import statistics
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx
from onnx import numpy_helper

from edge_iqa.export.accuracy_budget import AccuracyBudget
from edge_iqa.export.calibration import PreparedImages
from edge_iqa.export.graph_scopes import module_paths, nodes_matching
from edge_iqa.export.parity import compare, raw_scores
from edge_iqa.export.staging import load_artifact
from edge_iqa.runtime.bundle import read_manifest

if TYPE_CHECKING:
    from edge_iqa.export.score_correction import Correct
    from edge_iqa.export.targets import TargetProfile
    from edge_iqa.runtime.scorer import Scorer

COMPUTE_OPS = ("Conv", "MatMul", "Gemm")
MAX_BLOCK_COMPUTE = 8
GRAPH_BLOCK = "(graph)"  # nodes outside any module (the score wrapper's own ops)
Progress = Callable[[str], None]


def block_nodes(model: onnx.ModelProto, already_kept: set[str] | frozenset[str] = frozenset(),
                max_compute: int = MAX_BLOCK_COMPUTE) -> dict[str, list[str]]:
    """{module path: ONNX node names} of the blocks that hold quantizable compute (Conv, MatMul,
    Gemm) not already kept in floating point by the profile's ``keep_fp``; in graph order."""
    paths = {node.name: module_paths(node) for node in model.graph.node}
    compute: Counter[str] = Counter()
    for node in model.graph.node:
        if node.op_type in COMPUTE_OPS:
            for path in paths[node.name]:
                compute[path] += 1
    groups: dict[str, list[str]] = {}
    ops: dict[str, list[str]] = {}
    for node in model.graph.node:
        chain = paths[node.name]  # outermost module first
        name = next((p for p in chain if compute[p] <= max_compute), chain[-1]) if chain else GRAPH_BLOCK
        groups.setdefault(name, []).append(node.name)
        ops.setdefault(name, []).append(node.op_type)
    return {name: [n for n in nodes if n not in already_kept] for name, nodes in groups.items()
            if any(op in COMPUTE_OPS and n not in already_kept for op, n in zip(ops[name], nodes, strict=True))}


@dataclass(frozen=True)
class Validation:
    """Validation images (as the runtime feeds them), their MOS and the cached FP32 reference scores."""

    images: PreparedImages
    reference: np.ndarray
    mos: np.ndarray

    def measure(self, scorer: Scorer, images: int | None = None, indices: list[int] | None = None
                ) -> dict[str, Any]:
        """Drift of ``scorer`` (a candidate loaded by ``runtime.load``) against the FP32 scores on the
        validation images ``indices`` (default: the first ``images``, default all)."""
        if indices is None:
            indices = list(range(min(images or len(self.images), len(self.images))))
        scores = raw_scores(scorer, self.images.take(indices))
        return {**compare(scores, self.reference[indices], self.mos[indices]), "images": len(indices)}

    def worst_photos(self, scorer: Scorer, count: int) -> list[int]:
        """Indices of the ``count`` validation photos whose scores ``scorer`` moves most from FP32."""
        scores = raw_scores(scorer, self.images)
        order = np.argsort(-np.abs(scores - self.reference), kind="stable")
        return sorted(int(i) for i in order[:count])


@dataclass
class SearchResult:
    kept_blocks: list[str]
    kept_nodes: list[str]
    sensitivity: list[dict[str, Any]]  # every block, most sensitive first
    steps: list[dict[str, Any]]  # one per block given back, cumulative
    step_artifacts: list[Path] = field(default_factory=list)  # full INT8 first, then one per step
    within_budget: bool = False
    stopped_because: str = ""
    sensitivity_subset: str = ""

    def record(self) -> dict[str, Any]:
        return {"kept_blocks": self.kept_blocks, "kept_nodes": len(self.kept_nodes),
                "sensitivity": self.sensitivity, "sensitivity_subset": self.sensitivity_subset, "steps": self.steps,
                "stopped_because": self.stopped_because}


def _agreement(value: float | None) -> float:
    return value if value is not None else 0.0


def search(blocks: dict[str, list[str]], candidate: Callable[[list[str]], Path], scorer_for: Callable[[Path], Scorer],
           validation: Validation, budget: AccuracyBudget, *, full_int8: Path, sensitivity_images: int,
           max_kept_blocks: int, progress: Progress = lambda _: None) -> SearchResult:
    """Sensitivity of every block, then greedy give-back until ``budget`` holds.

    ``candidate(nodes)`` returns an INT8 artifact whose ``nodes`` (beyond the profile's keep_fp)
    stay in floating point; ``scorer_for(path)`` loads it (``runtime.load``, closed after use)."""
    if max_kept_blocks <= 0 or not blocks:
        return SearchResult([], [], [], [], [full_int8], stopped_because="nothing to give back (max_kept_blocks = 0 "
                                                                          "or no quantized block)")
    n_sens = min(sensitivity_images, len(validation.images))
    with scorer_for(full_int8) as full_scorer:
        full = validation.measure(full_scorer, None)
        per_photo = budget.excess({**full, "delta_srocc": 0.0}) > 1.0  # a per-photo budget that full INT8 misses
        subset = validation.worst_photos(full_scorer, n_sens) if per_photo else list(range(n_sens))
        base = validation.measure(full_scorer, indices=subset)
    ranking = []
    for i, (name, nodes) in enumerate(blocks.items(), 1):
        progress(f"sensitivity {i}/{len(blocks)}: {name}")
        with scorer_for(candidate(nodes)) as scorer:
            drift = validation.measure(scorer, indices=subset)
        ranking.append({
            "block": name, "nodes": len(nodes), "images": n_sens,
            "delta_srocc": drift["delta_srocc"], "rank_agreement": drift["rank_agreement"],
            "mean_abs_diff": drift["mean_abs_diff"], "max_abs_diff": drift["max_abs_diff"],
            # What giving this block back buys, against full INT8 on the same images.
            "gain_rank_agreement": _agreement(drift["rank_agreement"]) - _agreement(base["rank_agreement"]),
            "gain_abs_delta_srocc": (abs(base["delta_srocc"]) - abs(drift["delta_srocc"])
                                     if base["delta_srocc"] is not None and drift["delta_srocc"] is not None else 0.0),
            "gain_mean_abs_diff": base["mean_abs_diff"] - drift["mean_abs_diff"],
        })
    if per_photo:
        ranking.sort(key=lambda r: (-r["gain_mean_abs_diff"], -r["gain_rank_agreement"]))
    else:
        ranking.sort(key=lambda r: (-r["gain_rank_agreement"], -r["gain_abs_delta_srocc"], -r["gain_mean_abs_diff"]))
    for rank, row in enumerate(ranking, 1):
        row["rank"] = rank
    result = SearchResult([], [], ranking, [], [full_int8], stopped_because="")
    result.sensitivity_subset = "worst photos of full INT8" if per_photo else "first validation photos"
    best = budget.excess(full)
    tried = 0
    for row in ranking:
        if len(result.kept_blocks) >= max_kept_blocks or tried >= 2 * max_kept_blocks:
            break
        tried += 1
        nodes = [*result.kept_nodes, *blocks[row["block"]]]
        progress(f"give back {row['block']} (try {tried}, {len(result.kept_blocks)} kept)")
        path = candidate(nodes)
        with scorer_for(path) as scorer:
            drift = validation.measure(scorer, None)
        excess = budget.excess(drift)
        # A block that does not lower the worst budget ratio on all validation images goes back to
        # INT8 (the sensitivity subset misjudged it): keeping it would cost speed for nothing.
        accepted = excess < best
        result.steps.append({"block": row["block"], "accepted": accepted, "kept_blocks": len(result.kept_blocks)
                             + accepted, "budget_excess": excess, **drift, **budget.score_errors(drift)})
        if not accepted:
            continue
        best = excess
        result.kept_blocks.append(row["block"])
        result.kept_nodes = nodes
        result.step_artifacts.append(path)
        if best <= 1.0:
            result.within_budget = True
            result.stopped_because = "within budget"
            return result
    if len(result.kept_blocks) >= max_kept_blocks:
        result.stopped_because = f"max_kept_blocks = {max_kept_blocks} reached"
    elif tried < len(ranking):
        result.stopped_because = f"{tried} block(s) tried (limit 2 x max_kept_blocks)"
    else:
        result.stopped_because = "every block tried"
    return result


def record_given_back(quantization: dict[str, Any], nodes: list[str] | tuple[str, ...], how: str) -> None:
    """Add to a build's ``quantization`` record (in place) the nodes the search gave back to floating
    point, and ``how`` the backend gave them back."""
    quantization["kept_fp_nodes"] = list(dict.fromkeys([*quantization["kept_fp_nodes"], *nodes]))
    quantization["kept_fp_by_accuracy_control"] = list(nodes)
    quantization["given_back_by"] = how


# --- the Q/DQ graph of modelopt without a re-run ------------------------------------------------------
def strip_qdq(qdq_model: Path, nodes: list[str], out: Path, dequantize_weights: bool = False) -> Path:
    """Copy of an explicit Q/DQ graph where ``nodes`` read their inputs in floating point: every
    QuantizeLinear -> DequantizeLinear pair feeding them is bypassed (the consumers that stay
    quantized keep their own pair). Equivalent to quantizing with ``nodes_to_exclude=nodes`` and the
    same scales, without recalibrating. ``dequantize_weights``: a ``DequantizeLinear`` of an integer
    initializer feeding them (ONNX Runtime's INT8 weights and biases, which have no QuantizeLinear)
    is replaced by its float values too, the very numbers the INT8 node used."""
    model = onnx.load(str(qdq_model))
    producer = {out_name: node for node in model.graph.node for out_name in node.output}
    initializers = {t.name: t for t in model.graph.initializer}
    targets = set(nodes)
    for node in model.graph.node:
        if node.name not in targets:
            continue
        for i, name in enumerate(node.input):
            dq = producer.get(name)
            if dq is None or dq.op_type != "DequantizeLinear":
                continue
            q = producer.get(dq.input[0])
            if q is not None and q.op_type == "QuantizeLinear":
                node.input[i] = q.input[0]
            elif dequantize_weights and dq.input[0] in initializers:
                node.input[i] = f"{dq.input[0]}_float"
                if node.input[i] not in initializers:
                    from edge_iqa.export.qdq_network import dequantize_operands

                    integers, scale, zero = dequantize_operands(dq, initializers)
                    initializers[node.input[i]] = numpy_helper.from_array((integers - zero) * scale, node.input[i])
                    model.graph.initializer.append(initializers[node.input[i]])
    used = {name for node in model.graph.node for name in node.input} | {o.name for o in model.graph.output}
    # Drop the pairs nobody reads any more (twice: DQ first, then its Q).
    for _ in range(2):
        keep = [n for n in model.graph.node
                if n.op_type not in ("QuantizeLinear", "DequantizeLinear") or any(o in used for o in n.output)]
        del model.graph.node[:]
        model.graph.node.extend(keep)
        used = {name for node in model.graph.node for name in node.input} | {o.name for o in model.graph.output}
    if dequantize_weights:  # the integer weights nobody reads any more
        kept = [t for t in model.graph.initializer if t.name in used]
        del model.graph.initializer[:]
        model.graph.initializer.extend(kept)
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(out))
    return out


# --- speed cost -------------------------------------------------------------------------------------
def latency_ms(scorers: dict[str, Scorer], image: PreparedImages, rounds: int = 5,
               iterations: int = 10, warmup: int = 3, clock: Callable[[], float] = time.perf_counter
               ) -> dict[str, float]:
    """Median latency (ms) of each scorer on one prepared image (``score_tensor``, the runtime's
    scoring path). The scorers take turns round by round, so a change in machine load hits them
    alike. ``clock=time.process_time`` measures CPU time instead of wall time (a busy shared
    machine: the process's own CPU seconds per image, not its waiting)."""
    times: dict[str, list[float]] = {label: [] for label in scorers}
    for scorer in scorers.values():
        for _ in range(warmup):
            raw_scores(scorer, image)
    for _ in range(rounds):
        for label, scorer in scorers.items():
            for _ in range(iterations):
                start = clock()
                raw_scores(scorer, image)
                times[label].append((clock() - start) * 1e3)
    return {label: statistics.median(values) for label, values in times.items()}


def speed_cost(step_artifacts: list[Path], kept_blocks: list[str], scorer_for: Callable[[Path], Scorer],
               image: PreparedImages, measured_with: str) -> dict[str, Any]:
    """Latency of full INT8 and of each give-back step: a block's cost is its step's latency minus
    the previous step's (the artifact with the block in floating point vs without)."""
    labels = ["full int8", *kept_blocks]
    scorers = {label: scorer_for(path) for label, path in zip(labels, step_artifacts, strict=True)}
    try:
        medians = latency_ms(scorers, image)
    finally:
        for scorer in scorers.values():
            scorer.close()
    values = [medians[label] for label in labels]
    per_block = [{"block": block, "latency_ms": values[i + 1], "delta_ms": values[i + 1] - values[i]}
                 for i, block in enumerate(kept_blocks)]
    return {"method": "median one-image latency (runtime.load + score_tensor) of each give-back step's artifact "
                      "vs the previous step's (with vs without the block in floating point), runs interleaved",
            "measured_with": measured_with, "full_int8_ms": values[0], "final_ms": values[-1],
            "final_vs_full_int8": values[-1] / values[0] if values[0] else None, "per_block": per_block}


# --- the pipeline's entry point ---------------------------------------------------------------------
MIN_VALIDATION_IMAGES = 8


def restore(backend: ModuleType, onnx_fp32: Path, staging: Path, built: dict[str, Any], profile: TargetProfile,
            feeds: Callable[[], Any], work: Path, validation: Validation, budget: AccuracyBudget,
            progress: Progress = lambda _: None, correct: Correct | None = None, prequantized: Path | None = None,
            ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Rebuild the INT8 artifact in ``staging`` with the most sensitive blocks in floating point;
    returns the new build record and the accuracy-control record (kept blocks, sensitivity figures,
    speed cost). The caller measures the new artifact and enforces the budget. ``correct``: the
    export's score correction, fitted anew on every candidate and on the final build (each is
    judged as it would ship). ``prequantized``: the fine-tuned INT8 network the full build came from
    (OpenVINO, ``[quantization] qat_steps``); candidates and the final build start from it too."""
    spec = profile.quantization
    from_network = {"prequantized": prequantized} if prequantized is not None else {}
    full_dir = work / "full_int8"
    full_dir.mkdir(parents=True, exist_ok=True)
    for path in staging.iterdir():
        if path.is_file():
            shutil.copyfile(path, full_dir / path.name)
    full_int8 = full_dir / built["model_file"]
    fp32_model = onnx.load(str(onnx_fp32))
    static = set(nodes_matching(fp32_model, spec.keep_fp))
    staged = read_manifest(staging)  # the staged INT8 bundle's manifest: every candidate is loaded as it

    def scorer_for(path: Path) -> Scorer:
        return load_artifact(path, staged)

    blocks = block_nodes(fp32_model, static)
    progress("candidate builder")
    candidate = backend.candidate_builder(onnx_fp32, full_int8, profile, feeds, work, **from_network)
    counter = itertools.count()

    def build_candidate(nodes: list[str]) -> Path:
        path = candidate(nodes, work / "candidates" / str(next(counter)))
        if correct is not None:
            correct(path, staged)
        return path

    result = search(blocks, build_candidate, scorer_for, validation, budget, full_int8=full_int8,
                    sensitivity_images=spec.sensitivity_images, max_kept_blocks=spec.max_kept_blocks,
                    progress=progress)
    progress(f"final build with {len(result.kept_blocks)} block(s) in floating point")
    for path in staging.iterdir():
        if path.is_file():
            path.unlink()
    new_built = backend.build(onnx_fp32, staging, "int8", profile, feeds, work, exclude_nodes=result.kept_nodes,
                              **from_network)
    if correct is not None:
        new_built["score_correction"] = correct(staging / new_built["model_file"], staged).record()
    record = {"tool": "edge_iqa.export.accuracy_control", "candidates": backend.SEARCH_PROXY,
              "blocks_searched": len(blocks), "sensitivity_images": min(spec.sensitivity_images,
                                                                        len(validation.images)),
              "sensitivity_ranked_by": ("drop of mean |score diff| on the photos full INT8 moves most, then gain in "
                                        "rank agreement" if result.sensitivity_subset.startswith("worst") else
                                        "gain in rank agreement with the FP32 scores, then in |delta SROCC|, "
                                        "then in mean |score diff|"), **result.record()}
    progress("latency of each give-back step")
    measured_with = (f"{profile.runtime} on the exporting machine's CPU" if profile.runtime != "tensorrt" else
                     "ONNX Runtime CPU on the Q/DQ graphs (a proxy: says nothing about TensorRT on the device)")
    record["speed_cost"] = (speed_cost(result.step_artifacts, result.kept_blocks, scorer_for,
                                       validation.images.take([0]), measured_with) if result.kept_blocks else None)
    return new_built, record
