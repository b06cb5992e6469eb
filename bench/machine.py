"""What the benchmark ran on: CPU, cores, RAM, GPU, library versions, load; and a fingerprint.

The fingerprint hashes only the hardware (CPU model, logical cores, RAM rounded to GiB, GPU names),
so a library upgrade on the same machine is still compared against the baseline: that is exactly
the kind of change a speed regression check should catch.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
from pathlib import Path
from typing import Any

from edge_iqa.checksums import sha256_hex
from edge_iqa.versions import package_versions

LIBRARIES = ("edge-iqa", "numpy", "pillow", "scipy", "torch", "onnx", "onnxruntime", "openvino", "nncf")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def physical_cores() -> int | None:
    try:
        import psutil

        return psutil.cpu_count(logical=False)
    except ImportError:
        return None


def ram_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    try:
        import psutil

        return round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        return None


def gpus() -> list[str]:
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.splitlines() if line.strip()]


def library_versions() -> dict[str, str | None]:
    return package_versions(LIBRARIES)


def describe_machine() -> dict[str, Any]:
    allowed = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "logical_cores": os.cpu_count(),
        "usable_cores": allowed,
        "physical_cores": physical_cores(),
        "ram_gib": ram_gib(),
        "gpus": gpus(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "libraries": library_versions(),
        "load_average_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
    info["fingerprint"] = fingerprint(info)
    return info


def fingerprint(info: dict[str, Any]) -> str:
    """Short hash of the hardware facts (not of library versions or load)."""
    ram = info.get("ram_gib")
    hardware = {"cpu": info.get("cpu"), "logical_cores": info.get("logical_cores"),
                "ram_gib": round(ram) if isinstance(ram, (int, float)) else None, "gpus": info.get("gpus", [])}
    return sha256_hex(json.dumps(hardware, sort_keys=True), length=16)
