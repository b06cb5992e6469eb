"""``edge-iqa report``: a self-contained page (embedded thumbnails that decode, escaped text), and
in headless Chromium a screenshot that is not blank and no console message."""

from __future__ import annotations

import base64
import io
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from edge_iqa.cli import app
from edge_iqa.collection import CollectionJob, run_job
from edge_iqa.collection.report import write_report
from tests.helpers_collection import make_collection, tiny_bundle

pytest.importorskip("pyarrow")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("report")
    photos = make_collection(root, good=30, broken=5)
    odd = root / "photos" / "a <b> & 'c'.jpg"  # a name that must be escaped in the page
    os.link(photos.good[0], odd)
    run_job(CollectionJob((str(photos.listing), str(odd)), root / "s.parquet", tiny_bundle(root)))
    return root / "s.parquet"


def test_the_page_embeds_decodable_thumbnails_and_escapes_names(table: Path) -> None:
    page = write_report(table, table.with_suffix(".html"), count=8).read_text()
    sources = re.findall(r'<img src="([^"]+)"', page)
    assert len(sources) == 16  # 8 lowest + 8 highest
    for source in sources:
        assert source.startswith("data:image/jpeg;base64,")  # nothing outside the page
        with Image.open(io.BytesIO(base64.b64decode(source.split(",", 1)[1]))) as thumb:
            assert thumb.format == "JPEG" and max(thumb.size) == 128  # the 128 px photos, not upscaled
    assert "a &lt;b&gt; &amp; &#x27;c&#x27;.jpg" in page and "<b> &" not in page
    assert "31 scored, 5 failed" in page and "ImageTooSmallError" in page and "<svg" in page


def test_report_verb_writes_the_page_and_refuses_a_non_table(table: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    run = runner.invoke(app, ["report", str(table), "--out", str(tmp_path / "r.html")])
    assert run.exit_code == 0 and (tmp_path / "r.html").stat().st_size > 10_000
    (tmp_path / "x.parquet").write_bytes(b"nope")
    run = runner.invoke(app, ["report", str(tmp_path / "x.parquet")])
    assert run.exit_code == 2 and "not a Parquet table" in run.output


def _chromium(page: Path, shot: Path, tmp_path: Path) -> list[str]:
    """Screenshot ``page``; return the console messages Chromium logged (its stderr at --v=1)."""
    run = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                          f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,1400",
                          "--enable-logging=stderr", "--v=1", f"--screenshot={shot}", page.as_uri()],
                         capture_output=True, text=True, timeout=120)
    assert shot.is_file(), run.stderr[-2000:]
    return [line for line in run.stderr.splitlines() if ":CONSOLE" in line]


def _blank(shot: Path) -> bool:
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float64)
    background = np.median(pixels)
    return pixels.std() < 5 or np.mean(np.abs(pixels - background) > 30) < 0.02


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium; "
                                              ".ci/run installs it)")
def test_the_page_in_headless_chromium_is_not_blank_and_logs_nothing(table: Path, tmp_path: Path) -> None:
    page = write_report(table, tmp_path / "report.html")
    messages = _chromium(page, tmp_path / "report.png", tmp_path)
    assert messages == []
    assert not _blank(tmp_path / "report.png")
    # the checks can fail: a page with a script error is caught, a blank page is called blank
    (tmp_path / "bad.html").write_text("<html><body><script>console.error('x'); nope();</script></body></html>")
    assert len(_chromium(tmp_path / "bad.html", tmp_path / "bad.png", tmp_path)) == 2
    assert _blank(tmp_path / "bad.png")
