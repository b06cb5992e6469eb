"""``edge-iqa check BUNDLE`` and ``edge-iqa build-engine BUNDLE``: bundle verbs that run where the
bundle is deployed, so they import neither torch nor the export toolchain (``check`` needs
``onnx`` for the TensorRT graph check)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from edge_iqa.errors import EdgeIQAError


def check_command(
    bundle: Path = typer.Argument(..., help="Bundle folder."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Verify a bundle (manifest, checksums) and, for TensorRT targets, check its graph statically
    against the target's TensorRT version (ops, opset, attention form, Q/DQ, static shapes)."""
    from edge_iqa.runtime.bundle import read_manifest, safe_member, verify_files

    try:
        manifest = read_manifest(bundle)
        verify_files(bundle, manifest)
        report: dict = {"bundle": str(bundle), "runtime": manifest.runtime, "precision": manifest.precision,
                        "checksums": "ok"}
        if manifest.runtime == "tensorrt":
            from edge_iqa.runtime.tensorrt.static_check import check_graph

            target = manifest.section("target")
            version = (target.get("tensorrt") or {}).get("version")
            if not version:
                raise EdgeIQAError(f"{bundle}: the manifest names no TensorRT version; re-export the bundle")
            graph = check_graph(safe_member(bundle, manifest.model_file), version, target["attention_form"])
            report["tensorrt_check"] = graph.to_dict()
            graph.raise_if_failed()
    except EdgeIQAError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    if as_json:
        typer.echo(json.dumps(report, indent=2))
    else:
        extra = (f", TensorRT {report['tensorrt_check']['tensorrt_version']} graph check passed"
                 if "tensorrt_check" in report else "")
        typer.echo(f"{bundle}: {report['runtime']} {report['precision']} bundle, checksums ok{extra}")


def build_engine_command(
    bundle: Path = typer.Argument(..., help="A bundle exported for a TensorRT target."),
    rebuild: bool = typer.Option(False, help="Build even if a cached engine for this device exists."),
    verbose: bool = typer.Option(False, help="TensorRT verbose build log."),
) -> None:
    """Build (or reuse) the TensorRT engine of a bundle on this device and cache it in BUNDLE/engines/."""
    from edge_iqa.runtime.bundle import read_manifest, verify_files
    from edge_iqa.runtime.tensorrt.builder import build_engine, current_device_key
    from edge_iqa.runtime.tensorrt.cache import engine_paths
    from edge_iqa.runtime.tensorrt.recipe import read_recipe

    try:
        manifest = read_manifest(bundle)
        verify_files(bundle, manifest)
        if manifest.runtime != "tensorrt":
            raise EdgeIQAError(f"{bundle} is a {manifest.runtime} bundle; engines are built for TensorRT "
                               "bundles (edge-iqa export --target jetson | desktop-gpu)")
        recipe = read_recipe(bundle)
        key = current_device_key(recipe, manifest.sha256(recipe.onnx_file))
        engine, _ = engine_paths(bundle, key)
        if engine.is_file() and not rebuild:
            typer.echo(f"{engine} exists for this device (use --rebuild to build again)")
            return
        typer.echo(f"building {key.slug} (equivalent: {recipe.trtexec_command(str(engine))})")
        typer.echo(f"engine written: {build_engine(bundle, recipe, key, verbose=verbose)}")
    except EdgeIQAError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
