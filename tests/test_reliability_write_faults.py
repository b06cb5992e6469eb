"""Faults while a bundle is written: signals at random moments, a kill between the two renames,
a full disk, a read-only folder. The bundle at the output path is always either the old one or the
new one, complete and verified; leftovers are hidden and cleaned by the next export.

``write_bundle`` is the only code that writes a bundle (``export_bundle`` calls it), so killing a
process inside it covers the export's write phase; tests/test_reliability_export_faults.py runs the
real export. ``EDGE_IQA_RELIABILITY_KILLS`` sets the number of random kills (default 12).
"""

from __future__ import annotations

import errno
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_iqa.errors import BundleError
from edge_iqa.runtime import load
from edge_iqa.runtime.bundle import MANIFEST_NAME, clean_stale, read_manifest, verify_files, write_bundle
from tests.helpers_runtime import TinyNet, build_bundle

REPO = Path(__file__).resolve().parents[1]
KILLS = int(os.environ.get("EDGE_IQA_RELIABILITY_KILLS", "12"))
OLD, NEW = TinyNet.random(seed=21), TinyNet.random(seed=22)
IMAGE_SEED = 5

# The child writes NEW's network plus 4 MiB of padding in 64 slow chunks (~0.4 s), so random
# delays land before, inside and after populate, in the checksums and in the swap.
CHILD = textwrap.dedent("""
    import json, os, shutil, sys, time
    from pathlib import Path
    from edge_iqa.runtime import bundle

    out, template, mode = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    manifest = json.loads((template / "manifest.json").read_text())
    manifest.pop("files")

    if mode == "die-between-renames":
        real_replace = os.replace
        def replace(src, dst):
            if Path(dst) == out:  # the second rename: the old bundle is already moved aside
                os.kill(os.getpid(), 9)
            real_replace(src, dst)
        bundle.os.replace = replace

    def populate(staging):
        shutil.copy(template / "model.onnx", staging / "model.onnx")
        with open(staging / "padding.bin", "wb") as fh:
            for _ in range(64):
                fh.write(os.urandom(65536))
                fh.flush()
                time.sleep(0.006)
        return manifest

    print("ready", flush=True)
    bundle.write_bundle(out, populate)
    print("done", flush=True)
""")


def image() -> object:
    import numpy as np

    return np.random.default_rng(IMAGE_SEED).integers(0, 256, (120, 160, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def templates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("templates")
    return {"old": build_bundle(root / "old", OLD), "new": build_bundle(root / "new", NEW)}


@pytest.fixture(scope="module")
def scores(templates: dict[str, Path]) -> dict[str, float]:
    return {name: load(path, threads=1).score_one(image()) for name, path in templates.items()}


def start_child(out: Path, template: Path, mode: str = "normal") -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(out), str(template), mode], stdout=subprocess.PIPE,
                            text=True, env=env, cwd=REPO)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def state_of(out: Path, scores: dict[str, float]) -> str:
    """Which bundle sits at ``out`` ("old", "new"), checked complete; or "moved-aside"."""
    hidden = [p.name for p in out.parent.iterdir() if p.name != out.name]
    assert all(n.startswith((f".{out.name}.partial-", f".{out.name}.old-")) for n in hidden), hidden
    if not out.exists():
        assert any(n.startswith(f".{out.name}.old-") for n in hidden), "the old bundle vanished"
        return "moved-aside"
    verify_files(out, read_manifest(out))
    score = load(out, threads=1).score_one(image())
    assert score in (scores["old"], scores["new"]), score
    return "old" if score == scores["old"] else "new"


def test_random_signals_never_leave_a_partial_bundle(templates: dict[str, Path], scores: dict[str, float],
                                                     tmp_path: Path) -> None:
    out = tmp_path / "site" / "bundle"
    out.parent.mkdir()
    shutil.copytree(templates["old"], out)
    rng = random.Random(0)
    outcomes: Counter[str] = Counter()
    for _ in range(KILLS):
        proc = start_child(out, templates["new"])
        time.sleep(rng.uniform(0.0, 0.7))
        sig = rng.choice([signal.SIGKILL, signal.SIGTERM])
        proc.send_signal(sig)
        proc.wait(timeout=30)
        state = state_of(out, scores)
        outcomes[f"{state} after {signal.Signals(sig).name}" if proc.returncode < 0 else f"{state}, finished"] += 1
        if state == "new":  # start the next round from the old bundle again
            shutil.rmtree(out)
            shutil.copytree(templates["old"], out)
    print(f"\n{KILLS} signals during write_bundle: {dict(outcomes)}")
    assert sum(v for k, v in outcomes.items() if k.startswith("old after")) > 0, "no kill landed before the swap"

    # The next export cleans the dead processes' staging folders and succeeds.
    proc = start_child(out, templates["new"])
    assert proc.wait(timeout=60) == 0
    assert state_of(out, scores) == "new"
    assert sorted(p.name for p in out.parent.iterdir()) == ["bundle"]


def test_kill_between_the_two_renames_is_recovered(templates: dict[str, Path], scores: dict[str, float],
                                                   tmp_path: Path) -> None:
    out = tmp_path / "bundle"
    shutil.copytree(templates["old"], out)
    proc = start_child(out, templates["new"], "die-between-renames")
    assert proc.wait(timeout=60) == -signal.SIGKILL
    assert state_of(out, scores) == "moved-aside"
    # What the next export does first: the old bundle is put back, intact.
    assert sorted(p.name.split("-")[0] for p in clean_stale(out)) == [".bundle.old", ".bundle.partial"]
    assert state_of(out, scores) == "old"
    proc = start_child(out, templates["new"])
    assert proc.wait(timeout=60) == 0 and state_of(out, scores) == "new"


def test_leftovers_of_live_processes_are_left_alone(templates: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "bundle"
    live = tmp_path / f".bundle.partial-{os.getpid()}-abc"  # this very process: alive
    unknown = tmp_path / ".bundle.partial-xyz"  # old-style name, owner unknown
    dead = tmp_path / ".bundle.partial-999999999-abc"  # no such pid
    for folder in (live, unknown, dead):
        folder.mkdir()
    write_bundle(out, lambda staging: _copy_populate(templates["new"], staging))
    assert live.exists() and unknown.exists() and not dead.exists()


def _copy_populate(template: Path, staging: Path) -> dict:
    shutil.copy(template / "model.onnx", staging / "model.onnx")
    manifest = json.loads((template / MANIFEST_NAME).read_text())
    manifest.pop("files")
    return manifest


def test_bundle_is_readable_by_other_users(templates: dict[str, Path], tmp_path: Path) -> None:
    """mkdtemp makes private folders; a written bundle must not stay 0700 (a service reads it)."""
    out = write_bundle(tmp_path / "bundle", lambda staging: _copy_populate(templates["new"], staging))
    assert out.stat().st_mode & 0o055 == 0o055


def test_unreadable_file_is_a_bundle_error(templates: dict[str, Path], tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    bundle = Path(shutil.copytree(templates["old"], tmp_path / "b"))

    def denied(path: Path, chunk: int = 0) -> str:
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr("edge_iqa.runtime.bundle.sha256_file", denied)
    with pytest.raises(BundleError, match="cannot be read.*permissions"):
        load(bundle)


# --- full disk and read-only folders -------------------------------------------------------------------
@pytest.fixture()
def tmpfs(tmp_path: Path) -> Iterator[callable]:
    """Mount small tmpfs file systems (root only); skip where mounting is not allowed."""
    mounted: list[Path] = []

    def mount(size: str, read_only: bool = False) -> Path:
        point = tmp_path / f"mnt{len(mounted)}"
        point.mkdir()
        options = f"size={size}" + (",ro" if read_only else "")
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)], capture_output=True,
                              text=True, check=False)
        if proc.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.strip() or 'not root'}); the monkeypatched "
                        "variants cover this")
        mounted.append(point)
        return point

    yield mount
    for point in reversed(mounted):
        subprocess.run(["umount", "-l", str(point)], check=False)


def _padded_populate(template: Path, padding: int) -> callable:
    def populate(staging: Path) -> dict:
        manifest = _copy_populate(template, staging)
        (staging / "padding.bin").write_bytes(os.urandom(padding))
        return manifest

    return populate


def test_disk_full_on_a_real_tmpfs(templates: dict[str, Path], scores: dict[str, float], tmpfs: callable) -> None:
    disk = tmpfs("512k")
    out = write_bundle(disk / "bundle", _padded_populate(templates["old"], 1000))  # fits
    with pytest.raises(BundleError, match="No space left on device.*disk has space"):
        write_bundle(out, _padded_populate(templates["new"], 2 << 20))
    assert state_of(out, scores) == "old"
    assert sorted(p.name for p in disk.iterdir()) == ["bundle"], "the staging folder was not removed"


def test_read_only_tmpfs(templates: dict[str, Path], tmpfs: callable) -> None:
    disk = tmpfs("1m", read_only=True)
    with pytest.raises(BundleError, match="Read-only file system.*writable"):
        write_bundle(disk / "bundle", _padded_populate(templates["new"], 10))


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EDQUOT])
def test_write_errors_anywhere_are_bundle_errors(templates: dict[str, Path], scores: dict[str, float],
                                                 tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int) -> None:
    """Portable variant (no mount needed): the manifest write or the swap fails with an OS error."""
    out = Path(shutil.copytree(templates["old"], tmp_path / "bundle"))

    def fail(*args: object, **kwargs: object) -> None:
        raise OSError(code, os.strerror(code))

    with monkeypatch.context() as patch:
        patch.setattr(Path, "write_text", fail)
        with pytest.raises(BundleError, match=f"{os.strerror(code)}.*writable"):
            write_bundle(out, _padded_populate(templates["new"], 10))
    with monkeypatch.context() as patch:
        patch.setattr("edge_iqa.runtime.bundle.os.replace", fail)
        with pytest.raises(BundleError, match=os.strerror(code)):
            write_bundle(out, _padded_populate(templates["new"], 10))
    assert state_of(out, scores) == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]


def test_output_path_that_is_not_a_bundle_is_not_replaced(templates: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "photos"
    out.mkdir()
    (out / "holiday.jpg").write_bytes(b"precious")
    with pytest.raises(BundleError, match="not a bundle; choose another --out"):
        write_bundle(out, _padded_populate(templates["new"], 10))
    assert (out / "holiday.jpg").read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photos"]
