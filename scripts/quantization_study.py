"""Calibration quality of INT8 per backend, and the drift of exported bundles, on CLIVE evaluation images.

Evaluation images: the CLIVE development images (``../shared/datasets/clive/labels.csv``) that are
NOT among the 256 shipped calibration images (the bench's evaluation set), so calibration,
validation (the export's held-out shipped images) and evaluation never overlap.

``calibration``: for each backend (the cpu / onnxruntime / jetson profiles' graph and keep_fp),
calibration method (those the backend offers) and sample count (nested seeded subsets of the
shipped images; 256 is all of them), quantize to full INT8 (no mixed-precision search) and compare
the scores with PyTorch FP32 on the evaluation images: delta SROCC against MOS, rank agreement,
max/mean |score diff|. TensorRT's INT8 Q/DQ graph is run by ONNX Runtime on the CPU (the export's
proxy).

    python scripts/quantization_study.py calibration --model edge_hybrid_n --out study/edge_hybrid_n.json
    python scripts/quantization_study.py calibration --model topiq_nr_224 --golden --eval-images 64 \\
        --out study/topiq_nr_224.json

``variants``: per-photo error of quantization settings at the same speed (issue 16): each named
variant of a target profile (SmoothQuant alpha, bias correction, layers kept in FP, ...) quantized
to full INT8, scored on the evaluation images: p99 / max |dscore| in MOS points, delta SROCC, and
batch-1 latency relative to the target's default INT8 (interleaved in one process).

    python scripts/quantization_study.py variants --targets cpu onnxruntime --eval-images 0 \
        --out study/variants.json

``--photos validation`` scores the variants on the export's 128 validation photos instead: choose a
recipe there, then report it on the evaluation photos (which the bench reports too). ``--photos labels
--labels CSV`` scores a seeded draw of ``--labels-images`` photos of a labels CSV (``image,mos``), e.g.
1,000 BIQ2021 Train photos: tuning photos from another collection, enough of them for a p99 to be the
tenth-worst photo rather than the second (a test split is refused).

    python scripts/quantization_study.py bundles --photos labels --labels biq2021/train.csv \
        --labels-images 1000 --labels-exclude qat_images.txt --threads 1 --work W --out tuning.json B1 B2

``bundles``: score exported bundles (``edge_iqa.runtime.load``) on the evaluation images and
compare with PyTorch FP32 of the same checkpoint.

    python scripts/quantization_study.py bundles --model edge_hybrid_n b_cpu b_jetson --out study/bundles.json
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # scripts.seed_bundles (GOLDEN_KEYS)
SHARED = REPO.parent / "shared"
GOLDEN_LABEL = "golden deterministic (edge_iqa/models/golden_weights.py)"
BACKENDS = {"cpu": ("minmax", "percentile"), "onnxruntime": ("minmax", "percentile", "entropy"),
            "jetson": ("minmax", "entropy")}


def load_model(name: str, golden: bool, checkpoint: Path | None = None) -> tuple[Any, Any]:
    model, spec, _ = load_model_with_scale(name, golden, checkpoint)
    return model, spec


def load_model_with_scale(name: str, golden: bool, checkpoint: Path | None = None) -> tuple[Any, Any, float]:
    """(model, preprocessing, MOS points per raw output unit: the checkpoint's output transform)."""
    import torch

    from edge_iqa.export.pipeline import load_model_for_export
    from edge_iqa.models import create_model, get_model_info

    if golden:
        from edge_iqa.models.golden_weights import deterministic_state_dict
        from scripts.seed_bundles import GOLDEN_KEYS

        model = create_model(name)
        with torch.no_grad():
            model.load_state_dict(deterministic_state_dict(GOLDEN_KEYS.get(name, name)), strict=True)
        return model.eval(), get_model_info(name).preprocess, 1.0
    model, spec, transform, _ = load_model_for_export(name, checkpoint)
    return model.eval(), spec, float(transform["scale"])


def validation_set() -> tuple[list[Path], np.ndarray]:
    """The export's validation photos (the cpu profile's held-out shipped images), not evaluation ones."""
    from edge_iqa.export import calibration
    from edge_iqa.export.targets import load_target

    rows = calibration.profile_split(load_target("cpu")).validation
    return [calibration.image_file(row) for row in rows], np.array([row.mos for row in rows])


def evaluation_set(limit: int, seed: int = 0) -> tuple[list[Path], np.ndarray]:
    from edge_iqa.calibration_data import calibration_clive_names
    from edge_iqa.data.datasets import read_labels

    labels = read_labels(SHARED / "datasets" / "clive" / "labels.csv")
    excluded = calibration_clive_names()
    items = seeded_subset([item for item in labels.items if item.path.name not in excluded], limit, seed)
    return [item.path for item in items], np.array([item.mos for item in items])


def seeded_subset(items: list[Any], count: int, seed: int) -> list[Any]:
    """``count`` of ``items`` drawn with ``seed``, in their order (all of them for 0 or more than there are)."""
    if not count or count >= len(items):
        return items
    return [items[i] for i in sorted(np.random.default_rng(seed).permutation(len(items))[:count])]


def labelled_set(csv: Path, count: int, seed: int, exclude: Path | None) -> tuple[list[Path], np.ndarray]:
    """``count`` photos of a labels CSV (``image,mos``), a seeded draw, leaving out those listed in
    ``exclude`` (one path per line, e.g. a ``--qat-images`` list): tuning photos, more of them than the
    128 validation photos, for choosing a recipe by its tail. Never a test split."""
    from edge_iqa.data.datasets import read_labels

    if "test" in csv.name.lower():
        raise SystemExit(f"{csv}: looks like a test split; tune on training photos only (e.g. BIQ2021's Train CSV)")
    left_out = {Path(line).name for line in exclude.read_text().split("\n") if line.strip()} if exclude else set()
    items = seeded_subset([item for item in read_labels(csv).items if item.path.name not in left_out], count, seed)
    return [item.path for item in items], np.array([item.mos for item in items])


def study_photos(args: argparse.Namespace) -> tuple[list[Path], np.ndarray]:
    """The photos ``--photos`` names: CLIVE evaluation, the export's validation, or a labels CSV's draw."""
    if args.photos == "validation":
        return validation_set()
    if args.photos == "labels":
        if args.labels is None:
            raise SystemExit("--photos labels needs --labels CSV (columns image,mos)")
        return labelled_set(args.labels, args.labels_images, args.labels_seed, args.labels_exclude)
    return evaluation_set(args.eval_images)


def photos_tag(args: argparse.Namespace, paths: list[Path]) -> str:
    """Names the photo set in cached scores' file names: evaluation, validation or a labels draw."""
    if args.photos != "labels":
        return args.photos
    return "labels-" + hashlib.sha256("\n".join(map(str, paths)).encode()).hexdigest()[:10]


def artifact_scorer(out: Path, built: dict[str, Any], graph: Any, spec: Any, profile: Any, model_name: str) -> Any:
    """The built INT8 artifact through ``runtime.load`` (TensorRT: the export's ONNX Runtime stand-in
    bundle), as the export's gate and mixed-precision search score it."""
    from edge_iqa.export.staging import artifact_document, load_artifact

    return load_artifact(out / built["model_file"], artifact_document(
        profile.runtime, "int8", built["model_file"], graph.io_record(), spec, model_name=model_name,
        target=profile.to_dict(), runtime_options=built["runtime_options"]))


def preprocess(paths: list[Path], spec: Any, names: tuple[str, ...] = ("image",)) -> Any:
    """The photos as the runtime feeds them (``calibration.PreparedImages``)."""
    from edge_iqa.export import calibration

    return calibration.prepare_files(paths, spec, names)


def drift_record(scores: np.ndarray, reference: np.ndarray, mos: np.ndarray, with_mos: bool,
                 score_scale: float = 1.0) -> dict[str, Any]:
    """Drift vs FP32 (raw scores) plus p99 / max |dscore| in MOS points (``score_scale`` MOS per raw
    unit) and the paired bootstrap standard error of delta SROCC on these photos."""
    from edge_iqa.export.accuracy_budget import srocc_resolution
    from edge_iqa.export.parity import compare

    record = compare(scores, reference, mos if with_mos else None)
    record["p99_abs_dscore"] = record["p99_abs_diff"] * abs(score_scale)
    record["max_abs_dscore"] = record["max_abs_diff"] * abs(score_scale)
    record["mean_abs_dscore"] = record["mean_abs_diff"] * abs(score_scale)
    if with_mos:
        record["srocc_resolution"] = srocc_resolution(scores, reference, mos)
    else:
        record.pop("delta_srocc", None)
    return record


def target_graph(model: Any, spec: Any, names: tuple[str, ...], target: str, work: Path) -> tuple[Any, Any, Any]:
    """(profile, export backend, ONNX graph in the target's attention form) of one target."""
    from edge_iqa.export.onnx_export import export_onnx
    from edge_iqa.export.pipeline import backend_module
    from edge_iqa.export.targets import load_target

    profile = load_target(target)
    graph = export_onnx(model, work / f"{target}.onnx", input_names=names, input_size=spec.input_size,
                        form=profile.attention_form, opset=profile.opset, max_batch=profile.max_batch,
                        pixel_spec=spec if profile.pixel_input(names, spec) else None)
    return profile, backend_module(profile.runtime), graph


def calibration_study(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from edge_iqa.export import calibration
    from edge_iqa.export.parity import raw_scores, reference_scorer
    from edge_iqa.models import get_model_info

    torch.set_num_threads(args.threads)
    model, spec = load_model(args.model, args.golden, args.checkpoint)
    info = get_model_info(args.model)
    if hook := info.extra.get("fixed_size_hook"):
        getattr(model, hook)(*spec.input_size)
    names = tuple(info.inputs)
    paths, mos = evaluation_set(args.eval_images)
    started = time.perf_counter()
    images = calibration.prepare_files(paths, spec, names)
    reference = raw_scores(reference_scorer(model, spec, names), images)
    print(f"{len(images)} evaluation images, PyTorch FP32 reference in {time.perf_counter() - started:.0f}s",
          flush=True)
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="edge-iqa-qstudy-") as tmp:
        work = Path(tmp)
        for target in args.targets:
            profile, backend, graph = target_graph(model, spec, names, target, work)
            for method in BACKENDS[target]:
                if args.methods and method not in args.methods:
                    continue
                for samples in args.samples:
                    quant = dataclasses.replace(profile.quantization, method=method, calibration_samples=samples)
                    trial = dataclasses.replace(profile, quantization=quant, threads=args.threads)
                    rows = calibration.split(samples, quant.seed, 1).calibration
                    out = work / f"{target}-{method}-{samples}"
                    out.mkdir()
                    (scratch := work / f"{out.name}.work").mkdir()
                    start = time.perf_counter()
                    try:
                        built = backend.build(graph.path, out, "int8", trial,
                                              lambda rows=rows, graph=graph: calibration.iter_calibration_feeds(
                                                  rows, spec, names, pixels=graph.pixel_input), scratch)
                    except Exception as exc:  # noqa: BLE001 - one failed configuration is a row, not a crash
                        results.append({"target": target, "method": method, "samples": samples,
                                        "error": f"{type(exc).__name__}: {exc}"})
                        continue
                    build_s = time.perf_counter() - start
                    with artifact_scorer(out, built, graph, spec, trial, args.model) as scorer:
                        scores = raw_scores(scorer, images)
                    row = {"target": target, "runtime": profile.runtime, "method": method, "samples": samples,
                           "build_s": round(build_s, 1), "images": len(images),
                           **drift_record(scores, reference, mos, not args.golden)}
                    results.append(row)
                    print(json.dumps(row), flush=True)
    return {"model": args.model, "weights": weights_label(args),
            "evaluation": "CLIVE development images not in calibration_data", "images": len(images),
            "srocc_fp32": None if args.golden else _srocc(reference, mos), "rows": results}


def _srocc(scores: np.ndarray, mos: np.ndarray) -> float:
    from edge_iqa.metrics import srocc

    return float(srocc(scores, mos))


# Named variants of a target profile: keys of QuantizationSpec, plus "keep_fp_extra" (module-path
# patterns added to keep_fp). "A + B" on the command line merges two variants' changes into one row.
ATTENTION_BLOCKS = ("tokens_*", "semantic", "top_down_*")
# MobileNetV2's depthwise 3x3 convolutions (torchvision InvertedResidual: conv.0 in block 1, whose
# expand ratio is 1; conv.1 after the 1x1 expansion elsewhere): memory-bound in INT8 (issue 13's profile).
DEPTHWISE_CONVS = ("backbone.1.conv.0", "backbone.[2-9].conv.1", "backbone.1[0-7].conv.1")
# The stride-2/4 inverted residuals: the give-back search's first picks on the previous weights.
EARLY_BLOCKS = ("backbone.1", "backbone.2", "backbone.3")
COMMON_VARIANTS: dict[str, dict[str, Any]] = {
    "default": {}, "attention blocks in FP": {"keep_fp_extra": ATTENTION_BLOCKS},
    "depthwise convs in FP": {"keep_fp_extra": DEPTHWISE_CONVS},
    "blocks 1-3 in FP": {"keep_fp_extra": EARLY_BLOCKS},
    **{f"block {b} in FP": {"keep_fp_extra": (f"backbone.{b}",)} for b in (1, 2, 3)},
    # One convolution of an inverted residual in float (torchvision: conv.0 the 1x1 expansion, conv.1
    # the depthwise 3x3): which of block 2's rounding points cost the accuracy, and at what speed.
    **{f"block {b} {layer} in FP": {"keep_fp_extra": (f"backbone.{b}.conv.{i}",)}
       for b in (2, 3) for i, layer in enumerate(("expansion", "depthwise"))},
    "128 photos spread over MOS": {"calibration_selection": "mos_spread"},
    "64 calibration photos": {"calibration_samples": 64}, "240 calibration photos": {"calibration_samples": 240},
    **{f"equalized bottlenecks {alpha:g}": {"activation_equalization": alpha} for alpha in (0.5, 0.75, 1.0)},
    "bottlenecks not equalized": {"activation_equalization": 0.0},
    "no score correction": {"score_correction": "none"}, "score correction": {"score_correction": "affine"},
}
VARIANTS: dict[str, dict[str, dict[str, Any]]] = {
    "cpu": {**COMMON_VARIANTS, "percentile calibration": {"method": "percentile"},
            "smoothquant off": {"smooth_quant_alpha": -1.0},
            "smoothquant 0.5": {"smooth_quant_alpha": 0.5}, "smoothquant 0.8": {"smooth_quant_alpha": 0.8},
            "full bias correction": {"bias_correction": "full"},
            "NNCF model type default (not transformer)": {"model_type": "default"},
            "overflow fix off (8-bit first convs)": {"overflow_fix": "disable"},
            "channel alignment (CLE)": {"channel_alignment": True}},
    "onnxruntime": {**COMMON_VARIANTS, "percentile calibration": {"method": "percentile"},
                    "entropy calibration": {"method": "entropy"}},
}
STUDY_VALIDATION_IMAGES = 8  # the variants are judged on the evaluation photos, not the export's validation


def variant_change(target: str, name: str) -> dict[str, Any]:
    """The merged changes of ``name`` ("A + B": both A's and B's)."""
    change: dict[str, Any] = {}
    for part in (p.strip() for p in name.split(" + ")):
        if part not in VARIANTS[target]:
            raise SystemExit(f"unknown {target} variant {part!r}; known: {', '.join(VARIANTS[target])}")
        for key, value in VARIANTS[target][part].items():
            change[key] = (*change.get(key, ()), *value) if key == "keep_fp_extra" else value
    return change


def variant_profile(profile: Any, change: dict[str, Any], threads: int) -> Any:
    change = dict(change)
    extra = change.pop("keep_fp_extra", ())
    quant = dataclasses.replace(profile.quantization, keep_fp=(*profile.quantization.keep_fp, *extra), **change)
    return dataclasses.replace(profile, quantization=quant, threads=threads)


def variants_study(args: argparse.Namespace) -> dict[str, Any]:
    """Every variant built by the export backend (full INT8, no search), scored through
    ``edge_iqa.runtime.load`` (the one scoring path) on the evaluation photos; CPU time per image of
    every variant vs the target's default, the variants taking turns in one process."""
    import torch

    from edge_iqa.export import calibration, equalize
    from edge_iqa.export.accuracy_control import latency_ms
    from edge_iqa.export.parity import raw_scores
    from edge_iqa.export.staging import artifact_document, load_staged
    from edge_iqa.models import get_model_info

    torch.set_num_threads(args.threads)
    model, spec, scale = load_model_with_scale(args.model, args.golden, args.checkpoint)
    names = tuple(get_model_info(args.model).inputs)
    paths, mos = study_photos(args)
    stacks = preprocess(paths, spec, names)
    work = weights_folder(args) or Path(tempfile.mkdtemp(prefix="edge-iqa-variants-"))
    reference = fp32_reference(args, work, model, spec, names, stacks, photos_tag(args, paths))
    transform = {"scale": scale, "offset": 0.0}
    results: list[dict[str, Any]] = []
    for target in args.targets:
        graph_dir = work / f"graph-{os.getpid()}"  # study processes sharing --work each export their own
        graph_dir.mkdir(parents=True, exist_ok=True)
        profile, backend, plain_graph = target_graph(model, spec, names, target, graph_dir)
        graphs = {0.0: plain_graph}  # one ONNX graph per activation-equalization alpha
        scorers: dict[str, Any] = {}
        wanted = args.variants or list(VARIANTS[target])
        for name in ["default", *[v for v in wanted if v != "default"]]:
            if " + " not in name and name not in VARIANTS[target]:
                continue  # a variant of the other target
            change = variant_change(target, name)
            trial = variant_profile(profile, change, args.threads)
            quant = trial.quantization
            rows = calibration.split(quant.calibration_samples, quant.seed, STUDY_VALIDATION_IMAGES,
                                     quant.calibration_selection).calibration
            # Named after the recipe it builds, not only the variant's name: "default" follows the target
            # profile, so a --work folder kept across a profile change must not reuse the old build.
            # The builder's revision too: the same keys can build another graph after a builder change.
            built_by = {"builder_revision": getattr(backend, "RECIPE_REVISION", 1)}
            recipe = hashlib.sha256(json.dumps({**dataclasses.asdict(quant), **built_by}, sort_keys=True)
                                    .encode()).hexdigest()[:8]
            out = work / f"{target}-{_slug(name)}-{recipe}"
            start = time.perf_counter()
            alpha = quant.activation_equalization
            if alpha not in graphs:  # the export's equalization on the same calibration photos
                equalized, _ = equalize.equalized_copy(
                    model, calibration.iter_calibration_feeds(rows, spec, names), alpha, names[0])
                (graph_dir / f"eq{alpha:g}").mkdir(exist_ok=True)
                graphs[alpha] = target_graph(equalized, spec, names, target, graph_dir / f"eq{alpha:g}")[2]
            graph = graphs[alpha]
            template = artifact_document(trial.runtime, "int8", backend.MODEL_FILE, graph.io_record(), spec,
                                         model_name=args.model, output_transform=transform, target=trial.to_dict())
            try:
                built = _build_once(out, backend, graph.path, trial,
                                    lambda rows=rows, graph=graph: calibration.iter_calibration_feeds(
                                        rows, spec, names, pixels=graph.pixel_input), work,
                                    finish=_score_correction(trial, backend, model, spec, names, rows, template))
            except Exception as exc:  # noqa: BLE001 - one failed variant is a row, not a crash
                results.append({"target": target, "variant": name, "error": f"{type(exc).__name__}: {exc}"})
                continue
            scorer = load_staged(out, artifact_document(
                trial.runtime, "int8", built["model_file"], graph.io_record(), spec, model_name=args.model,
                output_transform=transform, target=trial.to_dict(), runtime_options=built["runtime_options"]))
            scorers[name] = scorer
            row = {"target": target, "runtime": profile.runtime, "variant": name, "change": change,
                   "calibration_photos": len(rows), "build_s": round(time.perf_counter() - start, 1),
                   "images": len(stacks), **drift_record(
                       _cached_scores(out / f"scores-{photos_tag(args, paths)}-{len(paths)}.npy",
                                      lambda s=scorer: raw_scores(s, stacks)),
                       reference, mos, not args.golden, scale)}
            results.append(row)
            print(json.dumps(row), flush=True)
        # CPU time per batch-1 image of every variant vs the default, the variants taking turns.
        medians = latency_ms(scorers, stacks.take([0]), rounds=args.speed_rounds, clock=time.process_time)
        for row in results:
            if row["target"] == target and row.get("variant") in medians:
                row["cpu_ms_per_image"] = medians[row["variant"]]
                row["cpu_time_vs_default"] = medians[row["variant"]] / medians["default"]
    return {"model": args.model, "weights": weights_label(args),
            "evaluation": "CLIVE development images not in calibration_data", "images": len(stacks),
            "scored_with": "edge_iqa.runtime.load of each artifact (Scorer.score_tensor), threads="
                           f"{args.threads}", "speed": "median CPU time (time.process_time) per batch-1 image",
            "score_scale_mos_per_raw": scale, "loadavg": Path("/proc/loadavg").read_text().split()[:3],
            "srocc_fp32": None if args.golden else _srocc(reference, mos), "rows": results}


def weights_label(args: argparse.Namespace) -> str:
    """Which weights a study measured, for its JSON."""
    return GOLDEN_LABEL if args.golden else str(args.checkpoint or "embedded")


def weights_folder(args: argparse.Namespace) -> Path | None:
    """``--work/MODEL-WEIGHTS``: builds and scores cached for one set of weights only (new weights,
    e.g. a retrained default model, start an empty folder instead of reusing stale figures)."""
    if args.work is None:
        return None
    if args.golden:
        tag = "golden"
    else:
        from edge_iqa.models.checkpoint import resolve_weights

        tag = str(resolve_weights(args.model, args.checkpoint).record.get("sha256") or "unhashed")[:12]
    return args.work / f"{args.model}-{tag}"


def fp32_reference(args: argparse.Namespace, work: Path | None, model: Any, spec: Any, names: tuple[str, ...],
                   stacks: Any, photos: str = "evaluation") -> np.ndarray:
    """PyTorch FP32 raw scores of the photos (cached in ``work`` when given)."""
    from edge_iqa.export.parity import raw_scores, reference_scorer

    def compute() -> np.ndarray:
        return raw_scores(reference_scorer(model, spec, names), stacks)

    if work is None:
        return compute()
    tags = ("-golden" if args.golden else "") + ("" if photos == "evaluation" else f"-{photos}")
    return _cached_scores(work / f"fp32-{args.model}{tags}-{len(stacks)}.npy", compute)


def _cached_scores(path: Path, compute: Any) -> np.ndarray:
    """Scores of the evaluation photos (PyTorch FP32, a variant), kept in the --work folder: a later
    run (more variants, one timing of them all) does not score them again."""
    if path.is_file():
        return np.load(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    scores = compute()
    np.save(path.with_suffix(".tmp.npy"), scores)
    os.replace(path.with_suffix(".tmp.npy"), path)  # another study process never reads half a file
    return scores


def markdown_rows(rows: list[dict[str, Any]], label: str, speed: str) -> str:
    """The docs table of a variants/bundles run (docs/quantization.md)."""
    bar = "\\|"
    lines = [f"| {label} | Δ SROCC vs FP32 | mean {bar}Δscore{bar} | p99 {bar}Δscore{bar} | max {bar}Δscore{bar} | "
             "CPU time per image |", "|---|---|---|---|---|---|"]
    for row in rows:
        if "error" in row:
            lines.append(f"| {row.get('variant', row.get('bundle'))} | failed: {row['error'][:80]} | | | | |")
            continue
        delta = "n/a" if row.get("delta_srocc") is None else f"{row['delta_srocc']:+.4f}"
        ratio = row.get(speed)
        lines.append(f"| {row.get('variant', row.get('bundle'))} | {delta} | {row['mean_abs_dscore']:.2f} | "
                     f"{row['p99_abs_dscore']:.2f} | {row['max_abs_dscore']:.2f} | "
                     f"{'n/a' if ratio is None else f'{ratio:.2f}x'} |")
    return "\n".join(lines)


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name.lower()).strip("_")


def _score_correction(profile: Any, backend: Any, model: Any, spec: Any, names: tuple[str, ...], rows: Any,
                      template: dict[str, Any]) -> Any:
    """What the export does after the INT8 build when the recipe asks for it: the score correction
    fitted on the variant's calibration photos (None: the recipe has none)."""
    if profile.quantization.score_correction == "none":
        return None
    from edge_iqa.export import score_correction

    def finish(out: Path, built: dict[str, Any]) -> None:
        correct = score_correction.corrector(backend, model, spec, names, rows)
        built["score_correction"] = correct(out / built["model_file"], template).record()

    return finish


def _build_once(out: Path, backend: Any, graph: Path, profile: Any, feeds: Any, work: Path,
                finish: Any = None) -> dict[str, Any]:
    """The backend's INT8 build record; a folder built by an earlier run (same --work) is reused,
    so a later run can add rows and still time every variant in one process. ``finish(out, built)``
    runs after the build (the score correction)."""
    record = out / "build.json"
    lock = out.with_name(out.name + ".lock")
    while not record.is_file():
        try:  # several study processes may share --work: one builds, the others wait for it
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            if not _alive(lock):
                lock.unlink(missing_ok=True)  # left by a killed study process
            time.sleep(20)
            continue
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        try:
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir(parents=True)
            built = backend.build(graph, out, "int8", profile, feeds, work)
            if finish is not None:
                finish(out, built)
            record.write_text(json.dumps(built, default=str))
        finally:
            lock.unlink()
    return json.loads(record.read_text())


def _alive(lock: Path) -> bool:
    """Whether the process that wrote ``lock`` (its pid) still runs."""
    try:
        os.kill(int(lock.read_text() or "0"), 0)
    except (ProcessLookupError, ValueError, FileNotFoundError):
        return False
    except PermissionError:
        return True
    return True


def bundles_study(args: argparse.Namespace) -> dict[str, Any]:
    """Each bundle scored through ``edge_iqa.runtime.load`` (TensorRT bundles through the export's
    ONNX Runtime proxy), raw scores vs PyTorch FP32; CPU time per image vs the first bundle."""
    import torch

    from edge_iqa.export.accuracy_control import latency_ms
    from edge_iqa.export.parity import raw_scores
    from edge_iqa.export.staging import load_staged
    from edge_iqa.runtime.bundle import read_manifest

    torch.set_num_threads(args.threads)
    model, spec, scale = load_model_with_scale(args.model, args.golden, args.checkpoint)
    paths, mos = study_photos(args)
    stacks = preprocess(paths, spec)
    reference = fp32_reference(args, weights_folder(args), model, spec, ("image",), stacks, photos_tag(args, paths))
    rows, scorers = [], {}
    with tempfile.TemporaryDirectory(prefix="edge-iqa-bundles-") as tmp:
        for i, bundle in enumerate(args.bundles):
            manifest = read_manifest(bundle)
            scorer = load_staged(bundle, None, Path(tmp) / f"proxy{i}", threads=args.threads)
            scores = raw_scores(scorer, stacks)
            control = manifest.get("accuracy_control") or {}
            row = {"bundle": str(bundle), "target": manifest["target"]["name"], "precision": manifest.precision,
                   "images": len(paths), **drift_record(scores, reference, mos, not args.golden, scale),
                   "kept_blocks": control.get("kept_blocks"), "export_budget": control.get("budget"),
                   "export_validation": control.get("final")}
            rows.append(row)
            scorers[str(bundle)] = scorer
            print(json.dumps(row), flush=True)
        # CPU time per batch-1 image of each bundle vs the first one, the bundles taking turns.
        medians = latency_ms(scorers, stacks.take([0]), rounds=args.speed_rounds, clock=time.process_time)
    for row in rows:
        row["cpu_ms_per_image"] = medians[row["bundle"]]
        row["cpu_time_vs_first"] = medians[row["bundle"]] / medians[rows[0]["bundle"]]
    return {"model": args.model, "photos": args.photos, "images": len(paths), "srocc_fp32": _srocc(reference, mos),
            "scored_with": f"edge_iqa.runtime.load, threads={args.threads}",
            "speed": "median CPU time (time.process_time) per batch-1 image",
            "loadavg": Path("/proc/loadavg").read_text().split()[:3], "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("calibration", "variants", "bundles"):
        p = sub.add_parser(name)
        p.add_argument("--model", default="edge_hybrid_n")
        p.add_argument("--golden", action="store_true", help="seed model with the golden deterministic weights")
        p.add_argument("--checkpoint", type=Path, default=None,
                       help="an edge-iqa checkpoint of --model instead of its embedded weights")
        p.add_argument("--eval-images", type=int, default=0, help="seeded subset of the evaluation set (0: all)")
        p.add_argument("--threads", type=int, default=1)
        p.add_argument("--out", type=Path, required=True)
    cal = sub.choices["calibration"]
    cal.add_argument("--targets", nargs="+", default=list(BACKENDS), choices=list(BACKENDS))
    cal.add_argument("--methods", nargs="*", default=[])
    cal.add_argument("--samples", nargs="+", type=int, default=[32, 128, 256])
    var = sub.choices["variants"]
    var.add_argument("--targets", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    var.add_argument("--variants", nargs="*", default=[],
                     help='names from VARIANTS, "A + B" for both changes at once (default: all)')
    var.add_argument("--work", type=Path, default=None,
                     help="keep the built variants here; a later run with the same folder reuses them")
    var.add_argument("--speed-rounds", type=int, default=5)
    sub.choices["bundles"].add_argument("bundles", nargs="+", type=Path, help="the first one is the speed reference")
    sub.choices["bundles"].add_argument("--speed-rounds", type=int, default=5)
    sub.choices["bundles"].add_argument("--work", type=Path, default=None,
                                        help="cache the PyTorch FP32 scores here (shared with `variants --work`)")
    for name in ("variants", "bundles"):
        sub.choices[name].add_argument("--photos", choices=["evaluation", "validation", "labels"], default="evaluation",
                                       help="CLIVE evaluation photos, the export's 128 validation photos "
                                            "(choose a recipe on these, report it on the evaluation photos), or a "
                                            "seeded draw of --labels (training photos for tuning)")
        sub.choices[name].add_argument("--labels", type=Path, default=None, help="labels CSV for --photos labels")
        sub.choices[name].add_argument("--labels-images", type=int, default=1000, help="photos drawn (0: all)")
        sub.choices[name].add_argument("--labels-seed", type=int, default=0)
        sub.choices[name].add_argument("--labels-exclude", type=Path, default=None,
                                       help="a list of photos to leave out of the draw (one path per line)")
    args = parser.parse_args()
    studies = {"calibration": calibration_study, "variants": variants_study, "bundles": bundles_study}
    result = studies[args.command](args)
    if args.command != "calibration":
        label, speed = ("variant", "cpu_time_vs_default") if args.command == "variants" else \
            ("bundle", "cpu_time_vs_first")
        result["markdown"] = markdown_rows(result["rows"], label, speed)
        print(result["markdown"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"command": shlex.join(sys.argv), **result}, indent=2) + "\n")


if __name__ == "__main__":
    main()
