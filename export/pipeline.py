"""``export_bundle``: model -> ONNX -> parity gate -> runtime artifact at a precision -> bundle.

    load model (checkpoint / embedded weights)      PreprocessSpec (+ target input-size override)
      -> ONNX, opset 23, attention form of the target, fused-op count checked
      -> parity gate: the graph as an ONNX Runtime bundle (runtime.load) vs the torch-backend Scorer
         on held-out calibration images                                        (ParityError)
      -> backend build (quantize_ort / quantize_openvino): fp32 | fp16 | int8 (+ integer-kernel check)
      -> accuracy: the artifact in its runtime vs PyTorch; fp32 must pass the parity gate again,
         fp16/int8 must keep |delta SROCC| (vs CLIVE MOS) within the target's budget
      -> int8 over budget: mixed precision (accuracy_control): the most sensitive blocks go back to
         floating point until the budget holds on the validation images     (AccuracyBudgetError)
      -> write_bundle (atomic): nothing is written unless every step passed
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from rich.console import Console
from torch import nn

import edge_iqa
from edge_iqa.data.preprocess import PreprocessSpec
from edge_iqa.errors import AccuracyBudgetError, ExportError, TargetError
from edge_iqa.export import accuracy_control, calibration, equalize, qat, score_correction
from edge_iqa.export.accuracy_budget import AccuracyBudget, refuse_unresolvable, srocc_resolution, unresolvable
from edge_iqa.export.attention_forms import op_counts
from edge_iqa.export.backends import FeedFactory, export_backend
from edge_iqa.export.distillation_photos import DistillationPhotos, distillation_photos
from edge_iqa.export.graph_scopes import nodes_matching
from edge_iqa.export.onnx_export import export_onnx
from edge_iqa.export.parity import compare, parity_gate, raw_scores, reference_scorer
from edge_iqa.export.staging import artifact_document, load_staged
from edge_iqa.export.targets import TargetProfile, load_target
from edge_iqa.models import get_model_info
from edge_iqa.models.checkpoint import resolve_weights
from edge_iqa.runtime.bundle import SCHEMA_VERSION, write_bundle
from edge_iqa.versions import package_versions

TOOLS = ("torch", "onnx", "onnxscript", "onnxruntime", "openvino", "nncf", "nvidia-modelopt", "edge-iqa")


def backend_module(runtime: str) -> ModuleType:
    """The quantizer module of ``runtime`` (see :mod:`edge_iqa.export.backends`)."""
    return export_backend(runtime).load()


def load_model_for_export(model_name: str, checkpoint: str | Path | None = None, random_weights: bool = False,
                          ) -> tuple[nn.Module, PreprocessSpec, dict[str, float], dict[str, Any]]:
    """(model, preprocessing, output transform, weights record) of a registered model, found by
    the one checkpoint resolver (:func:`edge_iqa.models.checkpoint.resolve_weights`)."""
    resolved = resolve_weights(model_name, checkpoint, random_weights=random_weights)
    return resolved.build(), resolved.preprocess, resolved.output_transform, resolved.record


def tool_versions() -> dict[str, str | None]:
    return {**package_versions(TOOLS), "edge_iqa": edge_iqa.__version__}


@contextlib.contextmanager
def _step(console: Console, what: str) -> Iterator[dict[str, str]]:
    note = {"done": ""}
    start = time.perf_counter()
    with console.status(f"{what} ..."):
        yield note
    console.print(f"[green]✓[/green] {what} [dim]{time.perf_counter() - start:.1f}s[/dim] {note['done']}")


def export_bundle(
    model_name: str = "edge_hybrid_n",
    target: str | Path | TargetProfile = "cpu",
    precision: str | None = None,
    checkpoint: str | Path | None = None,
    out: str | Path = "bundle",
    *,
    model: nn.Module | None = None,
    random_weights: bool = False,
    accuracy_gate: bool = True,
    accuracy_budget: float | None = None,
    max_score_error: float | None = None,
    p99_score_error: float | None = None,
    allow_over_budget: bool = False,
    qat_steps: int | None = None,
    qat_images: Sequence[str] = (),
    quiet: bool = False,
) -> Path:
    """Export ``model_name`` for ``target`` at ``precision`` (the target's default when None) into
    the bundle folder ``out``, atomically; returns ``out``.

    ``model`` exports an in-memory network (its registry entry still gives the preprocessing).
    ``accuracy_budget`` (max |delta SROCC| vs FP32 against MOS; default: the target's) bounds the
    fp16/int8 drift; ``max_score_error`` / ``p99_score_error`` (MOS points; default: the target's)
    bound each validation photo's |score - score(FP32)| (max and 99th percentile). INT8 over a budget
    keeps its most sensitive blocks in floating point until it holds,
    and is refused (AccuracyBudgetError, nothing written) if it still does not, unless
    ``allow_over_budget`` (then the manifest records it as over budget). ``accuracy_gate=False``
    skips the mixed-precision search and only records the drift (for untrained development
    weights, whose SROCC means nothing). ``qat_steps`` overrides the target's quantization-aware
    fine-tuning steps (OpenVINO and ONNX Runtime INT8; 0 = off); ``qat_images`` (folders, list files,
    globs) names more photos for that fine-tuning to learn from besides the calibration photos
    (:mod:`edge_iqa.export.distillation_photos`). The FP32 parity gate always applies.
    """
    console = Console(quiet=quiet, stderr=True)
    profile = target if isinstance(target, TargetProfile) else load_target(target)
    explicit_budget = accuracy_budget is not None  # asked for by the user, not the profile's default
    if accuracy_budget is not None:
        if not 0 <= accuracy_budget <= 1:
            raise TargetError(f"--accuracy-budget is a max |delta SROCC| in [0, 1], got {accuracy_budget}")
        profile = dataclasses.replace(profile, accuracy_budget=float(accuracy_budget))
    for key, value in (("max_score_error", max_score_error), ("p99_score_error", p99_score_error)):
        if value is not None:
            if not value > 0:
                raise TargetError(f"--{key.replace('_', '-')} is a |score difference| in MOS points, > 0; got {value}")
            profile = dataclasses.replace(profile, **{key: float(value)})
    if qat_steps is not None:
        if qat_steps < 0:
            raise TargetError(f"--qat-steps is a number of fine-tuning steps, >= 0 (0: off); got {qat_steps}")
        if qat_steps and not export_backend(profile.runtime).fine_tunes:
            raise TargetError(f"--qat-steps fine-tunes OpenVINO and ONNX Runtime INT8 networks; target "
                              f"{profile.name!r} runs {profile.runtime}")
        profile = dataclasses.replace(profile, quantization=dataclasses.replace(profile.quantization,
                                                                                 qat_steps=qat_steps))
    precision = profile.resolve_precision(precision)
    if qat_images and not (precision == "int8" and profile.quantization.qat_steps
                           and export_backend(profile.runtime).fine_tunes):
        raise TargetError(f"--qat-images feeds the quantization-aware fine-tuning of an OpenVINO or ONNX Runtime INT8 "
                          f"export; this one ({profile.name}, {profile.runtime}, {precision}, "
                          f"qat_steps {profile.quantization.qat_steps}) does none: export --precision int8 to cpu or "
                          "onnxruntime with --qat-steps above 0, or leave --qat-images out")
    backend = backend_module(profile.runtime)
    info = get_model_info(model_name)
    if model is not None:
        spec, transform, weights = info.preprocess, {"scale": 1.0, "offset": 0.0}, {"source": "in-memory model"}
    else:
        model, spec, transform, weights = load_model_for_export(model_name, checkpoint, random_weights)
    model = model.eval()
    if profile.input_size:
        spec = spec.with_input_size(profile.input_size)
    # Models whose forward depends on the input size (TOPIQ's interpolated position embedding and
    # adaptive pooling) precompute those pieces for the one size the graph is exported at.
    if hook := info.extra.get("fixed_size_hook"):
        getattr(model, hook)(*spec.input_size)
    names = tuple(info.inputs)
    budget = AccuracyBudget(profile.accuracy_budget, profile.max_score_error, profile.p99_score_error,
                            score_scale=float(transform["scale"]))
    quant = profile.quantization
    split = calibration.profile_split(profile)
    extra_photos = distillation_photos(qat_images, [calibration.image_file(row) for row in split.evaluation]) \
        if qat_images else None
    console.print(f"[bold]edge-iqa export[/bold] {model_name} -> target [cyan]{profile.name}[/cyan] "
                  f"({profile.runtime}, {precision}, attention {profile.attention_form}) -> {out}")

    with tempfile.TemporaryDirectory(prefix="edge-iqa-export-") as tmp:
        work = Path(tmp)
        exported, equalized = model, []
        if precision == "int8" and quant.activation_equalization:
            # Exact in floating point, so the parity gate below also checks it (graph vs ``model``).
            with _step(console, f"activation equalization (alpha {quant.activation_equalization:g})") as note:
                exported, equalized = equalize.equalized_copy(
                    model, calibration.iter_calibration_feeds(split.calibration, spec, names),
                    quant.activation_equalization, names[0], quant.equalization_steps_per_octave)
                note["done"] = f"{len(equalized)} bottleneck stream(s)"
        with _step(console, f"ONNX export (opset {profile.opset})") as note:
            graph = export_onnx(exported, work / "fp32.onnx", input_names=names, input_size=spec.input_size,
                                form=profile.attention_form, opset=profile.opset, max_batch=profile.max_batch,
                                pixel_spec=spec if profile.pixel_input(names, spec) else None)
            note["done"] = f"{graph.fused_attention_ops} fused attention op(s) for {graph.attention_calls} call(s)"
        with _step(console, f"PyTorch reference on {len(split.evaluation)} real images, parity gate on "
                            f"{profile.parity.images}") as note:
            images = calibration.prepare_images(split.evaluation, spec, names)
            mos = np.array([row.mos for row in split.evaluation])
            reference = raw_scores(reference_scorer(model, spec, names), images)
            n = profile.parity.images
            onnx_scores = raw_scores(_onnx_gate_scorer(graph, work / "onnx-gate", model_name, spec, transform, profile),
                                     images.take(slice(0, n)))
            onnx_parity = parity_gate(onnx_scores, reference[:n], profile.parity, "the exported ONNX graph")
            note["done"] = (f"max|diff| {onnx_parity['max_abs_diff']:.2e}, "
                            f"rank agreement {_fmt(onnx_parity['rank_agreement'])}")

        def feeds() -> Iterator[dict[str, np.ndarray]]:
            return calibration.iter_calibration_feeds(split.calibration, spec, names, pixels=graph.pixel_input)

        # INT8 is judged on held-out images only (never a calibration image); fp16/fp32 on all.
        n_check = len(split.validation) if precision == "int8" else len(images)
        search = precision == "int8" and accuracy_gate
        needed = accuracy_control.MIN_VALIDATION_IMAGES if search else 3  # SROCC needs 3 scores
        if precision == "int8" and n_check < needed:
            raise ExportError(f"[quantization] calibration_samples = {quant.calibration_samples} leaves {n_check} of "
                              f"the {len(calibration.read_manifest())} shipped images for validating INT8 (need "
                              f"{needed}): lower calibration_samples or raise [parity] accuracy_images")
        validation = accuracy_control.Validation(images.take(slice(0, n_check)), reference[:n_check], mos[:n_check])

        correct = None
        if precision == "int8" and quant.score_correction == "affine":
            with _step(console, f"PyTorch reference on the {len(split.calibration)} calibration images "
                                "(score correction)"):
                correct = score_correction.corrector(backend, model, spec, names, split.calibration)

        prequantized, qat_skipped = None, None
        if precision == "int8" and quant.qat_steps:
            prequantized, qat_skipped = _fine_tune(console, backend, exported, model, spec, names, split, profile,
                                                   graph, feeds, work, float(transform["scale"]), extra_photos)
        from_network = {"prequantized": prequantized} if prequantized is not None else {}

        def manifest_for(built: dict[str, Any], accuracy: dict[str, Any] | None) -> dict[str, Any]:
            document = _manifest(model_name, info, profile, precision, spec, transform, weights, graph, built,
                                 onnx_parity, accuracy, split, quant, equalized)
            if qat_skipped:
                document["quantization"]["quantization_aware"] = {"steps": 0, "skipped": qat_skipped}
            return document

        def measure(staging: Path, built: dict[str, Any]) -> dict[str, Any]:
            # The staged bundle through runtime.load: the code path and settings a user gets.
            scorer = load_staged(staging, manifest_for(built, None), work / "proxy-bundle")
            return _artifact_accuracy(scorer, precision, profile, validation, budget)

        def populate(staging: Path) -> dict[str, Any]:
            nonlocal budget  # a profile's SROCC budget finer than the validation photos resolve is raised
            with _step(console, f"{profile.runtime} {precision} build") as note:
                built = backend.build(graph.path, staging, precision, profile, feeds, work, **from_network)
                kernels = built.get("integer_kernels")
                note["done"] = f"{kernels['integer_kernel_count']} integer kernels" if kernels else ""
            if correct is not None:
                with _step(console, "score correction fitted on the calibration images") as note:
                    fitted = correct(staging / built["model_file"], manifest_for(built, None))
                    built["score_correction"] = fitted.record()
                    note["done"] = (f"not applied: {fitted.skipped}" if fitted.skipped else
                                    f"score x {fitted.slope:.4f} {fitted.intercept:+.4f} (raw units)")
            what = "held-out validation" if precision == "int8" else "held-out"
            with _step(console, f"staged {precision} bundle (runtime.load) vs PyTorch on {n_check} {what} images"
                       ) as note:
                accuracy = measure(staging, built)
                note["done"] = _drift_note(accuracy)
            control = None
            if search:
                # Before minutes of searching: a budget the user asked for that is finer than the validation
                # photos resolve is refused. The target profile's own budget is not (refusing it would make the
                # plain `edge-iqa export --target T` fail for a model whose INT8 drift is noisy on these photos):
                # it is judged at the photos' resolution instead, said and recorded, because whether a drift
                # below the resolution passes, and with it whether the bundle keeps its INT8 speed, is chance.
                raised_to = None
                if explicit_budget:
                    refuse_unresolvable(budget, accuracy, n_check, profile.runtime)
                elif unresolvable(budget, accuracy):
                    raised_to = accuracy["srocc_resolution"]
                    console.print(f"[yellow]![/yellow] the {profile.name} budget |delta SROCC| <= "
                                  f"{budget.delta_srocc:g} is finer than the {n_check} validation photos resolve "
                                  f"(bootstrap standard error {raised_to:.4f}): judged at {raised_to:.4f}")
                    budget = dataclasses.replace(budget, delta_srocc=raised_to)
                    accuracy.update(budget=raised_to, within_budget=budget.within(accuracy))
                control = {"budget": budget.delta_srocc, "profile_budget": profile.accuracy_budget,
                           "budget_raised_to_resolution": raised_to,
                           "metric": "|delta SROCC| vs FP32 against MOS",
                           "max_score_error": profile.max_score_error, "p99_score_error": profile.p99_score_error,
                           "score_metric": "|score - score(FP32)| on the MOS scale over the validation photos",
                           "validation_images": n_check, "full_int8": _drift_only(accuracy),
                           "needed": not accuracy["within_budget"], "kept_blocks": []}
                if not accuracy["within_budget"]:
                    started = time.perf_counter()
                    with console.status("mixed precision ...") as status:
                        built, found = accuracy_control.restore(
                            backend, graph.path, staging, built, profile, feeds, work, validation,
                            budget, lambda m: status.update(f"mixed precision: {m}"), correct=correct,
                            prequantized=prequantized)
                    control.update(found)
                    control["search_s"] = round(time.perf_counter() - started, 1)
                    console.print(f"[green]✓[/green] mixed precision [dim]{control['search_s']:.1f}s[/dim] "
                                  f"{len(control['kept_blocks'])} block(s) kept in floating point: "
                                  f"{', '.join(control['kept_blocks']) or '-'}")
                    with _step(console, f"staged mixed-precision bundle (runtime.load) vs PyTorch on {n_check} "
                                        f"{what} images") as note:
                        accuracy = measure(staging, built)
                        note["done"] = _drift_note(accuracy)
                control.update(final=_drift_only(accuracy), within_budget=accuracy["within_budget"],
                               over_budget=not accuracy["within_budget"], allowed_over_budget=allow_over_budget)
            if accuracy_gate and not allow_over_budget and precision != "fp32" and not accuracy["within_budget"]:
                raise AccuracyBudgetError(_over_budget_message(precision, profile, accuracy, control, budget))
            manifest = manifest_for(built, accuracy)
            manifest["accuracy_control"] = control
            return manifest

        path = write_bundle(out, populate)
    console.print(f"[bold green]bundle written[/bold green] {path}")
    return path


def _fine_tune(console: Console, backend: ModuleType, exported: nn.Module, model: nn.Module, spec: PreprocessSpec,
               names: tuple[str, ...], split: calibration.CalibrationSplit, profile: TargetProfile, graph: Any,
               feeds: FeedFactory, work: Path, out_scale: float,
               extra_photos: DistillationPhotos | None) -> tuple[Path | None, str | None]:
    """Quantization-aware fine-tuning (:mod:`edge_iqa.export.qat`) against ``model``'s scores: (the
    folder of the fine-tuned INT8 network for the backend's build, None) or, for a network it does
    not cover, (None, why). OpenVINO's starts from ``exported`` (NNCF quantizes the PyTorch model);
    ONNX Runtime's from the post-training INT8 Q/DQ graph of ``graph``."""
    if skipped := qat.not_applicable(names, spec):
        console.print(f"[yellow]![/yellow] quantization-aware fine-tuning skipped: {skipped}")
        return None, skipped
    quant = profile.quantization
    from_graph = export_backend(profile.runtime).fine_tunes == "graph"
    if from_graph:
        base_dir = work / "qat-base"
        base_dir.mkdir()
        with _step(console, f"{profile.runtime} int8 build (post-training, to fine-tune)"):
            base = backend.build(graph.path, base_dir, "int8", profile, feeds, work)
    extra = f" and {len(extra_photos.paths)} --qat-images photos" if extra_photos else ""
    with _step(console, f"quantization-aware fine-tuning ({quant.qat_steps} steps on the "
                        f"{len(split.calibration)} calibration images{extra})") as note:
        if from_graph:
            tuned = qat.fine_tune_graph(base_dir / base["model_file"], base["quantization"], model, spec,
                                        names, split.calibration, profile, pixel_input=graph.pixel_input,
                                        out_scale=out_scale, extra_photos=extra_photos)
        else:
            tuned = qat.fine_tune(exported, model, spec, names, split.calibration, profile,
                                  attention=backend.has_attention(graph.path), pixel_input=graph.pixel_input,
                                  kept_fp_onnx_nodes=nodes_matching(_load_onnx(graph.path), quant.keep_fp),
                                  out_scale=out_scale, extra_photos=extra_photos)
        losses = tuned.record["quantization_aware"]
        note["done"] = (f"distillation loss {losses['loss_first_mos2']:.3g} -> {losses['loss_last_mos2']:.3g} "
                        "(squared MOS points)")
    return backend.save_prequantized(tuned.model, tuned.record, work / "qat"), None


def _fmt(value: object) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _drift_note(accuracy: dict[str, Any]) -> str:
    score = ("" if accuracy.get("max_abs_dscore") is None else
             f", |dscore| p99 {accuracy['p99_abs_dscore']:.2f} max {accuracy['max_abs_dscore']:.2f} MOS")
    return (f"delta SROCC {_fmt(accuracy['delta_srocc'])}, max|diff| {accuracy['max_abs_diff']:.2e}{score}, "
            f"rank agreement {_fmt(accuracy['rank_agreement'])}")


def _drift_only(accuracy: dict[str, Any]) -> dict[str, Any]:
    keys = ("delta_srocc", "rank_agreement", "max_abs_diff", "mean_abs_diff", "p99_abs_diff", "p99_abs_dscore",
            "max_abs_dscore", "srocc_resolution", "images", "srocc_reference", "srocc_artifact", "within_budget")
    return {k: accuracy.get(k) for k in keys}


def _onnx_gate_scorer(graph: Any, folder: Path, model_name: str, spec: PreprocessSpec, transform: dict[str, float],
                      profile: TargetProfile) -> Any:
    """The exported FP32 graph as an ONNX Runtime bundle, loaded by runtime.load (the parity gate
    before any backend build)."""
    folder.mkdir()
    shutil.copyfile(graph.path, folder / "model.onnx")
    return load_staged(folder, artifact_document(
        "onnxruntime", "fp32", "model.onnx", graph.io_record(), spec, model_name=model_name, output_transform=transform,
        target=profile.to_dict(), runtime_options={"graph_optimization_level": "ORT_ENABLE_ALL"}))


def _artifact_accuracy(scorer: Any, precision: str, profile: TargetProfile,
                       validation: accuracy_control.Validation, budget: AccuracyBudget) -> dict[str, Any]:
    """The staged bundle, loaded by runtime.load, vs PyTorch: FP32 passes the parity gate;
    FP16/INT8 are measured against the budget (|delta SROCC| and the per-photo |dscore| on the MOS
    scale; the caller enforces it), with the resolution of delta SROCC on these photos."""
    scores = raw_scores(scorer, validation.images)
    reference, mos = validation.reference, validation.mos
    record: dict[str, Any] = {**compare(scores, reference, mos), "images": len(validation.images),
                              "budget": budget.delta_srocc,
                              "srocc_reference": _srocc(reference, mos), "srocc_artifact": _srocc(scores, mos)}
    record.update(budget.score_errors(record), max_score_error=profile.max_score_error,
                  p99_score_error=profile.p99_score_error, score_scale=budget.score_scale)
    if precision == "fp32":
        n = profile.parity.images
        record["parity"] = parity_gate(scores[:n], reference[:n], profile.parity, f"the {profile.runtime} FP32 model")
    if precision != "fp32":
        record["srocc_resolution"] = srocc_resolution(scores, reference, mos)
    record["within_budget"] = budget.within(record)
    return record


def _over_budget_message(precision: str, profile: TargetProfile, accuracy: dict[str, Any],
                         control: dict[str, Any] | None, budget: AccuracyBudget) -> str:
    kept = control.get("kept_blocks") if control else None
    tried = (f" after keeping {len(kept)} block(s) in floating point ({', '.join(kept)}; "
             f"{control.get('stopped_because', '')})" if kept else "")
    return (f"{precision} on {profile.runtime}: {'; '.join(budget.over(accuracy))} on {accuracy['images']} "
            f"held-out images{tried}; no bundle was written. "
            "Pass a larger --accuracy-budget / --max-score-error / --p99-score-error, --allow-over-budget to write "
            "it anyway (recorded in the manifest), "
            "raise [quantization] max_kept_blocks, try method = 'percentile' or more calibration_samples, or fp16")


def _srocc(scores: np.ndarray, mos: np.ndarray) -> float | None:
    from edge_iqa.metrics import srocc

    value = srocc(scores, mos) if np.ptp(scores) > 0 else float("nan")
    return None if np.isnan(value) else float(value)


def _manifest(model_name: str, info: Any, profile: TargetProfile, precision: str, spec: PreprocessSpec,
              transform: dict[str, float], weights: dict[str, Any], graph: Any, built: dict[str, Any],
              onnx_parity: dict[str, Any], accuracy: dict[str, Any] | None, split: calibration.CalibrationSplit,
              quant: Any, equalized_streams: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "edge_iqa_version": edge_iqa.__version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "runtime": profile.runtime,
        "precision": precision,
        "model_file": built["model_file"],
        "io": graph.io_record(),
        "preprocess": spec.to_dict(),
        "output_transform": {"scale": float(transform["scale"]), "offset": float(transform["offset"])},
        "model": {"name": model_name, "family": info.family, "inputs": list(info.inputs),
                  "description": info.description, "paper": info.paper, "output_range": list(info.output_range),
                  "weights": weights},
        "target": profile.to_dict(),
        "runtime_options": built["runtime_options"],
        "graph": {"opset": graph.opset, "attention_form": graph.attention_form,
                  "attention_calls": graph.attention_calls, "fused_attention_ops": graph.fused_attention_ops,
                  "onnx_op_counts": dict(op_counts(_load_onnx(graph.path)))},
        "calibration": {"dataset": "edge_iqa.calibration_data (CLIVE development JPEGs)",
                        "method": quant.method if precision == "int8" else None,
                        "samples": len(split.calibration) if precision == "int8" else 0,
                        "seed": quant.seed, "selection": quant.calibration_selection,
                        "keep_fp_patterns": list(quant.keep_fp), **split.record(),
                        "equalized_streams": equalized_streams,
                        "score_correction": built.get("score_correction")},
        "quantization": built["quantization"],
        "integer_kernels": built["integer_kernels"],
        "parity": {"onnx_fp32_vs_torch": onnx_parity},
        "accuracy": accuracy,
        "tools": tool_versions(),
        **built.get("extra_manifest", {}),
    }


def _load_onnx(path: Path) -> Any:
    import onnx

    return onnx.load(str(path))
