"""``edge-iqa export`` and ``edge-iqa targets``."""

from __future__ import annotations

from pathlib import Path

import typer

from edge_iqa.errors import EdgeIQAError


def export_command(
    target: str = typer.Option("cpu", help="Target profile name (see `edge-iqa targets`) or path to a TOML profile."),
    model: str = typer.Option("edge_hybrid_n", help="Registered model name (see `edge-iqa models`)."),
    checkpoint: Path = typer.Option(None, help="Checkpoint (.safetensors + .json, or .pth); default: embedded."),
    precision: str = typer.Option(None, help="fp32 | fp16 | int8 (default: the target's)."),
    out: Path = typer.Option(..., help="Bundle folder to write (replaced atomically if it is a bundle)."),
    random_weights: bool = typer.Option(False, help="Export an untrained model (pipeline testing only)."),
    accuracy_budget: float = typer.Option(
        None, help="Max |SROCC(fp16/int8) - SROCC(fp32)| against MOS on held-out images (default: the target's "
                   "accuracy_budget). INT8 over it keeps its most sensitive blocks in floating point until it holds."),
    max_score_error: float = typer.Option(
        None, help="Max |score(fp16/int8) - score(fp32)| of any held-out photo, in MOS points (default: the "
                   "target's max_score_error). INT8 over it keeps blocks in floating point as for --accuracy-budget."),
    p99_score_error: float = typer.Option(
        None, help="The same for the 99th percentile of |score difference| over the held-out photos (MOS points)."),
    allow_over_budget: bool = typer.Option(
        False, help="Write the bundle even if the budget cannot be met (the manifest records it as over budget)."),
    qat_steps: int = typer.Option(
        None, help="Steps of quantization-aware fine-tuning of an OpenVINO or ONNX Runtime INT8 network against "
                   "the FP32 scores (default: the target's qat_steps: 300 for cpu, about 5 minutes on 2 cores; "
                   "900 for onnxruntime, about 10 minutes; 0: post-training INT8 only)."),
    qat_images: list[str] = typer.Option(
        None, help="More photos for the quantization-aware fine-tuning to learn from besides the 128 calibration "
                   "photos: a folder, a list file of paths or a glob (repeatable; no MOS needed, e.g. your camera's "
                   "own photos). More varied photos lower the per-photo INT8 error (docs/quantization.md)."),
    accuracy_gate: bool = typer.Option(
        True, help="--no-accuracy-gate: no mixed-precision search and no refusal, only record the drift "
                   "(untrained weights)."),
) -> None:
    """Export, quantize and compile a model into a bundle for a deployment target."""
    from edge_iqa.export.pipeline import export_bundle

    try:
        export_bundle(model, target, precision, checkpoint, out, random_weights=random_weights,
                      accuracy_gate=accuracy_gate, accuracy_budget=accuracy_budget,
                      max_score_error=max_score_error, p99_score_error=p99_score_error,
                      allow_over_budget=allow_over_budget, qat_steps=qat_steps,
                      qat_images=tuple(qat_images or ()))
    except EdgeIQAError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc


def targets_command() -> None:
    """List the shipped target profiles."""
    from rich.console import Console
    from rich.table import Table

    from edge_iqa.export.targets import list_targets, load_target

    table = Table("name", "runtime", "precision", "allowed", "attention", "opset", "budget", "calibration",
                  "description")  # budget: |delta SROCC|, then p99/max |dscore| in MOS points when budgeted
    for name in list_targets():
        t = load_target(name)
        q = t.quantization
        table.add_row(t.name, t.runtime, t.precision, ",".join(t.precisions), t.attention_form, str(t.opset),
                      f"{t.accuracy_budget:g}" + (f", p99 {t.p99_score_error:g} / max {t.max_score_error:g} MOS"
                                                  if t.max_score_error and t.p99_score_error else ""),
                      f"{q.method} x{q.calibration_samples}", t.description)
    Console().print(table)
