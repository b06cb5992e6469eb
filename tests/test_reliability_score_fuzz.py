"""Bad images through the runtime: ``Scorer.score`` and ``edge-iqa score --bundle``.

The decoder alone is fuzzed in tests/test_imageio.py; here the whole scoring path is: a real
(tiny) bundle gets mixed sequences of valid photos in every supported form and broken or hostile
inputs. Every input must end in a typed :class:`~edge_iqa.errors.ImageError` or a finite score,
never another exception or a hang, and a valid image must get the score it gets alone (bad inputs
leave no state behind). Valid variants with a known pixel meaning (lossless formats, EXIF
rotations, 16-bit, palette, alpha) must score exactly like the expected pixels.

Short in CI (``EDGE_IQA_RELIABILITY_FUZZ`` examples, default 200); the long run is
``python scripts/fuzz.py`` (see docs/reliability.md). ``EDGE_IQA_RELIABILITY_STATS=path.json``
writes the counts of inputs tried and outcomes.
"""

from __future__ import annotations

import io
import json
import math
import os
import shutil
import struct
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from typer.testing import CliRunner

from edge_iqa.cli import app
from edge_iqa.errors import (
    ArrayInputError,
    EdgeIQAError,
    ImageDecodeError,
    ImageError,
    ImageTooLargeError,
    ImageTooSmallError,
)
from edge_iqa.runtime import Scorer, load
from tests.helpers_images import encode, png_declaring, real_photo, with_exif_orientation
from tests.helpers_runtime import TinyNet, build_bundle

FUZZ_EXAMPLES = int(os.environ.get("EDGE_IQA_RELIABILITY_FUZZ", "200"))
#: One input taking longer than this is a hang (a 500x500 photo takes ~5 ms on one core).
HANG_SECONDS = 30.0
NET = TinyNet.random(seed=7)
STATS: Counter[str] = Counter()

# EXIF orientation -> the numpy transform from stored to displayed pixels (EXIF 2.3, tag 0x0112).
ORIENTATIONS: dict[int, Callable[[np.ndarray], np.ndarray]] = {
    1: lambda a: a, 2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
    5: lambda a: a.transpose(1, 0, 2), 6: lambda a: np.rot90(a, -1),
    7: lambda a: np.rot90(a, 2).transpose(1, 0, 2), 8: lambda a: np.rot90(a, 1),
}


@dataclass(frozen=True)
class Case:
    """One input and what scoring it must give.

    ``pixels``: a valid input whose decoded pixels are known: it must score exactly like them.
    ``error``: an input that must raise this ImageError subclass.
    Neither: a valid input whose score must be finite and the same every time.
    """

    source: object
    error: type[EdgeIQAError] | None = None
    pixels: np.ndarray | None = None


# --- the catalogue of inputs ---------------------------------------------------------------------------
def _jpeg_declaring(jpeg: bytes, width: int, height: int) -> bytes:
    """A real JPEG whose SOF header is patched to declare width x height."""
    data = bytearray(jpeg)
    for marker in (b"\xff\xc0", b"\xff\xc2"):
        at = data.find(marker)
        if at >= 0:
            data[at + 5 : at + 9] = struct.pack(">HH", height, width)
            return bytes(data)
    raise AssertionError("no SOF marker in the JPEG")


def _cmyk_jpeg(photo: np.ndarray) -> bytes:
    return encode(Image.fromarray(photo).convert("CMYK"), "JPEG", quality=95)


def build_catalogue(photo: np.ndarray, folder: Path) -> dict[str, Case]:
    """Named inputs, valid and invalid, covering every form and failure the runtime accepts."""
    folder.mkdir(parents=True, exist_ok=True)
    gray = np.asarray(Image.fromarray(photo).convert("L"))
    jpeg = encode(photo, "JPEG", quality=90)
    pil_palette = Image.fromarray(photo).quantize(64)
    rgba = np.dstack([photo, np.full(photo.shape[:2], 255, np.uint8)])
    clear = np.dstack([photo, np.zeros(photo.shape[:2], np.uint8)])
    exif_base = with_exif_orientation(photo, 1)
    exif_pixels = np.asarray(Image.open(io.BytesIO(exif_base)).convert("RGB"))
    nan = photo.astype(np.float32) / 255
    nan[3, 4, 1] = np.nan

    def file(name: str, data: bytes) -> Path:
        path = folder / name
        path.write_bytes(data)
        return path

    cases: dict[str, Case] = {
        # valid, with known pixels
        "array": Case(photo, pixels=photo),
        "array_negative_strides": Case(photo[::-1, ::-1], pixels=np.ascontiguousarray(photo[::-1, ::-1])),
        "png_bytes": Case(encode(photo, "PNG"), pixels=photo),
        "png_bytearray": Case(bytearray(encode(photo, "PNG")), pixels=photo),
        "png_memoryview": Case(memoryview(encode(photo, "PNG")), pixels=photo),
        "bmp_path": Case(file("ok.bmp", encode(photo, "BMP")), pixels=photo),
        "tiff_lzw_path": Case(file("ok.tif", encode(photo, "TIFF", compression="tiff_lzw")), pixels=photo),
        "webp_lossless": Case(encode(photo, "WEBP", lossless=True), pixels=photo),
        "png_named_jpg": Case(file("really_png.jpg", encode(photo, "PNG")), pixels=photo),
        "pil_image": Case(Image.fromarray(photo), pixels=photo),
        "grayscale_png": Case(encode(gray, "PNG"), pixels=np.repeat(gray[..., None], 3, 2)),
        "gray16_png": Case(encode(Image.fromarray(gray.astype(np.uint16) * 257), "PNG"),
                           pixels=np.repeat(gray[..., None], 3, 2)),
        "palette_png": Case(encode(pil_palette, "PNG"), pixels=np.asarray(pil_palette.convert("RGB"))),
        "opaque_rgba_png": Case(encode(rgba, "PNG"), pixels=photo),
        "transparent_rgba_png": Case(encode(clear, "PNG"), pixels=np.full_like(photo, 255)),
        "float_tiff": Case(encode(Image.fromarray(gray.astype(np.float32) / 255), "TIFF"),
                           pixels=np.repeat(gray[..., None], 3, 2)),
        **{f"exif_orientation_{k}": Case(with_exif_orientation(photo, k),
                                         pixels=np.ascontiguousarray(fn(exif_pixels)))
           for k, fn in ORIENTATIONS.items()},
        "min_side_16": Case(photo[:16, :16].copy(), pixels=photo[:16, :16].copy()),
        # valid, lossy or converted: finite and stable
        "jpeg_path": Case(file("ok.jpg", jpeg)),
        "progressive_jpeg": Case(encode(photo, "JPEG", progressive=True)),
        "webp_lossy": Case(file("ok.webp", encode(photo, "WEBP", quality=80))),
        "cmyk_jpeg": Case(_cmyk_jpeg(photo)),
        "gif": Case(encode(photo, "GIF")),
        "one_bit_png": Case(encode(Image.fromarray(gray).convert("1"), "PNG")),
        "large_jpeg_3000x2000": Case(encode(np.asarray(Image.fromarray(photo).resize((3000, 2000))), "JPEG")),
        # broken files
        "zero_byte_path": Case(file("empty.jpg", b""), ImageDecodeError),
        "zero_bytes": Case(b"", ImageDecodeError),
        "text_named_png": Case(file("notes.png", b"this is not an image\n" * 20), ImageDecodeError),
        "html_named_jpg": Case(file("page.jpg", b"<!doctype html><html><body>404</body></html>"), ImageDecodeError),
        "missing_path": Case(folder / "does_not_exist.jpg", ImageDecodeError),
        "directory_path": Case(folder, ImageDecodeError),
        "empty_string_path": Case("", ImageDecodeError),
        **{f"truncated_{fmt.lower()}": Case(encode(photo, fmt)[: len(encode(photo, fmt)) // 2], ImageDecodeError)
           for fmt in ("JPEG", "PNG", "WEBP", "BMP", "TIFF")},
        "jpeg_header_only": Case(jpeg[:200], ImageDecodeError),
        # hostile sizes
        "png_declares_20000x20000": Case(png_declaring(20000, 20000), ImageTooLargeError),
        "jpeg_declares_20000x20000": Case(_jpeg_declaring(jpeg, 20000, 20000), ImageTooLargeError),
        "png_declares_1x1": Case(png_declaring(1, 1), ImageTooSmallError),
        "real_1x1_png": Case(encode(photo[:1, :1], "PNG"), ImageTooSmallError),
        "array_15x200": Case(np.zeros((15, 200, 3), np.uint8), ImageTooSmallError),
        "array_0x0": Case(np.zeros((0, 0, 3), np.uint8), ImageTooSmallError),
        "array_20000x20000_view": Case(np.broadcast_to(np.uint8(0), (20000, 20000, 3)), ImageTooLargeError),
        # wrong arrays and objects
        "array_float32": Case(photo.astype(np.float32), ArrayInputError),
        "array_float_nan": Case(nan, ArrayInputError),
        "array_int64": Case(photo.astype(np.int64), ArrayInputError),
        "array_bool": Case(photo > 128, ArrayInputError),
        "array_2d": Case(gray, ArrayInputError),
        "array_rgba": Case(rgba, ArrayInputError),
        "array_1_channel": Case(gray[..., None], ArrayInputError),
        "array_0d": Case(np.array(3, np.uint8), ArrayInputError),
        "array_object": Case(np.empty((32, 32, 3), dtype=object), ArrayInputError),
        "pil_float_nan": Case(Image.fromarray(np.full((32, 32), np.nan, np.float32)), ArrayInputError),
        "pil_float_inf": Case(Image.fromarray(np.full((32, 32), np.inf, np.float32)), ArrayInputError),
        "none": Case(None, ArrayInputError),
        "integer": Case(42, ArrayInputError),
        "dict": Case({"image": "x.jpg"}, ArrayInputError),
    }
    if hasattr(os, "mkfifo"):  # reading a FIFO would block forever
        os.mkfifo(folder / "pipe.jpg")
        cases["fifo_path"] = Case(folder / "pipe.jpg", ImageDecodeError)
    sparse = folder / "sparse.jpg"  # 4 GiB of holes: must not be read whole
    with open(sparse, "wb") as fh:
        fh.truncate(4 << 30)
    cases["sparse_4gib_path"] = Case(sparse, ImageDecodeError)
    return cases


def fuzz_seeds(photo: np.ndarray) -> list[bytes]:
    """Real encodings to mutate: every format plus the odd variants decoders handle specially."""
    return [encode(photo, "JPEG"), encode(photo, "JPEG", progressive=True), _cmyk_jpeg(photo),
            with_exif_orientation(photo, 6), encode(photo, "PNG"),
            encode(Image.fromarray(photo).quantize(16), "PNG"), encode(photo, "WEBP"),
            encode(photo, "WEBP", lossless=True), encode(photo, "BMP"), encode(photo, "TIFF"),
            encode(photo, "TIFF", compression="tiff_deflate"), encode(photo, "GIF")]


MAGICS = [b"\xff\xd8\xff\xe0", b"\x89PNG\r\n\x1a\n", b"RIFF\x00\x10\x00\x00WEBPVP8 ", b"BM", b"II*\x00",
          b"MM\x00*", b"GIF89a", b"\x00\x00\x01\x00", b"P6\n"]


# --- running one input ---------------------------------------------------------------------------------------
def outcome(scorer: Scorer, source: object) -> float | type[EdgeIQAError]:
    """The score of ``source`` scored alone, or the type of the typed error it raised.

    Anything that is not an EdgeIQAError propagates and fails the test; so does a hang.
    """
    start = time.perf_counter()
    try:
        scores = scorer.score(source)
    except EdgeIQAError as exc:
        STATS["typed_errors"] += 1
        STATS[f"error:{type(exc).__name__}"] += 1
        assert str(exc), "a typed error must carry a message"
        result: float | type[EdgeIQAError] = type(exc)
    else:
        assert scores.shape == (1,) and scores.dtype == np.float64, scores
        result = float(scores[0])
        assert math.isfinite(result), f"non-finite score {result}"
        STATS["scores"] += 1
    elapsed = time.perf_counter() - start
    STATS["inputs"] += 1
    assert elapsed < HANG_SECONDS, f"one input took {elapsed:.1f}s"
    return result


@pytest.fixture(scope="module")
def scorer(tmp_path_factory: pytest.TempPathFactory) -> Scorer:
    return load(build_bundle(tmp_path_factory.mktemp("fuzz") / "bundle", NET, max_batch=3), threads=1)


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """A real, non-square photo (so rotations change the score)."""
    return np.ascontiguousarray(np.asarray(Image.fromarray(real_photo(160)).resize((160, 120))))


@pytest.fixture(scope="module")
def catalogue(photo: np.ndarray, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Case]:
    return build_catalogue(photo, tmp_path_factory.mktemp("inputs"))


@pytest.fixture(scope="module")
def alone(scorer: Scorer, catalogue: dict[str, Case]) -> dict[str, float | type[EdgeIQAError]]:
    """Each catalogue input scored alone, first thing, on a fresh scorer."""
    return {name: outcome(scorer, case.source) for name, case in catalogue.items()}


@pytest.fixture(scope="module", autouse=True)
def _write_stats() -> object:
    yield
    target = os.environ.get("EDGE_IQA_RELIABILITY_STATS")
    if target:
        Path(target).write_text(json.dumps(dict(sorted(STATS.items())), indent=2) + "\n")


def check_case(name: str, case: Case, got: float | type[EdgeIQAError], scorer: Scorer) -> None:
    if case.error is not None:
        assert got is case.error, f"{name}: expected {case.error.__name__}, got {got}"
        return
    assert isinstance(got, float), f"{name}: a valid input raised {got.__name__}"
    if case.pixels is not None:
        expected = float(scorer.score(case.pixels)[0])
        assert got == expected, f"{name}: scored {got}, its pixels score {expected}"


# --- tests -------------------------------------------------------------------------------------------------
def test_every_catalogue_input_alone(scorer: Scorer, catalogue: dict[str, Case], alone: dict) -> None:
    for name, case in catalogue.items():
        check_case(name, case, alone[name], scorer)
    kinds = Counter("error" if c.error else "valid" for c in catalogue.values())
    assert kinds["error"] >= 30 and kinds["valid"] >= 25, kinds


def test_rotations_and_formats_really_change_or_keep_the_score(alone: dict) -> None:
    """Guards the exact-pixel checks against a network that ignores its input."""
    assert alone["exif_orientation_1"] != alone["exif_orientation_6"] != alone["exif_orientation_3"]
    assert alone["array"] == alone["png_bytes"] == alone["bmp_path"] == alone["tiff_lzw_path"]
    assert alone["transparent_rgba_png"] != alone["opaque_rgba_png"]


def test_fuzz_mixed_sequences(scorer: Scorer, catalogue: dict[str, Case], alone: dict, photo: np.ndarray) -> None:
    names = sorted(catalogue)
    seeds = fuzz_seeds(photo)
    canary = catalogue["array"].source
    canary_score = alone["array"]
    before = STATS["inputs"]

    fuzzed = st.one_of(
        st.builds(lambda seed, flips, cut: _mutate(seeds[seed], flips, cut),
                  st.integers(0, len(seeds) - 1),
                  st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), min_size=1, max_size=10),
                  st.floats(0.05, 1.0)),
        st.builds(lambda magic, tail: magic + tail, st.sampled_from(MAGICS), st.binary(max_size=300)),
        st.binary(max_size=64),
    )
    item = st.one_of(st.sampled_from(names), fuzzed)

    @settings(max_examples=FUZZ_EXAMPLES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(items=st.lists(item, min_size=1, max_size=6))
    def run(items: list[str | bytes]) -> None:
        results = []
        for entry in items:
            if isinstance(entry, str):
                got = outcome(scorer, catalogue[entry].source)
                check_case(entry, catalogue[entry], got, scorer)
                if isinstance(alone[entry], float):
                    assert got == alone[entry], f"{entry}: {got} among other inputs, {alone[entry]} alone"
            else:
                got = outcome(scorer, entry)
                assert got == outcome(scorer, entry), "a fuzzed input scored differently twice"
                if not isinstance(got, float):
                    assert issubclass(got, ImageError)
            results.append(got)
        sources = [catalogue[e].source if isinstance(e, str) else e for e in items]
        failures = [r for r in results if not isinstance(r, float)]
        if failures:
            with pytest.raises(EdgeIQAError) as info:
                scorer.score(sources)
            assert type(info.value) is failures[0], "a list call fails with its first bad input's error"
        else:
            np.testing.assert_allclose(scorer.score(sources), results, rtol=1e-6, atol=1e-9)
        STATS["sequences"] += 1
        assert scorer.score_one(canary) == canary_score, "a bad input left state behind"

    run()
    tried = STATS["inputs"] - before
    print(f"\nfuzz: {tried} inputs scored alone, {STATS['sequences']} sequences; outcomes {dict(STATS)}")
    assert tried >= FUZZ_EXAMPLES


def _mutate(seed: bytes, flips: list[tuple[float, int]], cut: float) -> bytes:
    blob = bytearray(seed)
    for where, value in flips:
        # Half the flips hit the first 256 bytes, where headers declare sizes and modes.
        span = min(len(blob), 256) if value % 2 else len(blob)
        blob[min(int(where * span), len(blob) - 1)] = value
    return bytes(blob[: max(1, int(len(blob) * cut))])


def test_batch_array_and_empty_list(scorer: Scorer, photo: np.ndarray, alone: dict) -> None:
    batch = np.stack([photo, photo[::-1].copy(), photo])
    scores = scorer.score(batch)
    assert scores.shape == (3,) and scores[0] == scores[2] == alone["array"]
    assert scorer.score([]).shape == (0,)
    with pytest.raises(ArrayInputError):
        scorer.score(np.zeros((2, 32, 32, 4), np.uint8))
    with pytest.raises(ArrayInputError):
        scorer.score(batch.astype(np.float64))


@pytest.mark.parametrize("bad", [np.full((1, 3, 96, 96), np.nan, np.float32),
                                 np.full((1, 3, 96, 96), np.inf, np.float32),
                                 np.zeros((1, 3, 95, 96), np.float32), np.zeros((0, 3, 96, 96), np.float32),
                                 np.zeros((1, 3, 96, 96), np.uint8)])
def test_score_tensor_refuses_bad_rows(scorer: Scorer, bad: np.ndarray) -> None:
    with pytest.raises(ArrayInputError, match="score"):
        scorer.score_tensor(bad)


# --- the CLI -------------------------------------------------------------------------------------------------
CLI_FILES = {"good.png": "png_bytes", "empty.jpg": "zero_bytes", "notes.png": None, "bomb.png":
             "png_declares_20000x20000", "good.webp": "webp_lossless", "cut.jpg": "truncated_jpeg",
             "tiny.png": "real_1x1_png", "rotated.jpg": "exif_orientation_6"}


@pytest.fixture(scope="module")
def cli_inputs(catalogue: dict[str, Case], tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("cli")
    paths = []
    for name, key in CLI_FILES.items():
        data = catalogue[key].source if key else b"not an image"
        (folder / name).write_bytes(bytes(data))
        paths.append(folder / name)
    return [*paths, folder / "missing.jpg"]


def test_cli_reports_each_bad_file_and_scores_the_good_ones(scorer: Scorer, cli_inputs: list[Path],
                                                            alone: dict) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["score", "--bundle", str(scorer.bundle_dir), *map(str, cli_inputs)])
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    scored = dict(line.split("\t") for line in result.stdout.splitlines())
    errors = [line for line in result.stderr.splitlines() if "\terror: " in line]
    good = {"good.png": "png_bytes", "good.webp": "webp_lossless", "rotated.jpg": "exif_orientation_6"}
    assert sorted(Path(p).name for p in scored) == sorted(good)
    for path, value in scored.items():
        assert value == f"{alone[good[Path(path).name]]:.2f}"
    assert len(errors) == len(cli_inputs) - len(good), result.stderr
    assert "Traceback" not in result.stdout + result.stderr

    as_json = runner.invoke(app, ["score", "--json", "--bundle", str(scorer.bundle_dir), *map(str, cli_inputs)])
    assert as_json.exit_code == 1
    records = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert [r["image"] for r in records] == list(map(str, cli_inputs))
    by_name = {Path(r["image"]).name: r for r in records}
    assert by_name["bomb.png"]["type"] == "ImageTooLargeError" and "set_max_pixels" in by_name["bomb.png"]["error"]
    assert by_name["tiny.png"]["type"] == "ImageTooSmallError"
    assert by_name["missing.jpg"]["type"] == "ImageDecodeError"
    assert by_name["good.png"]["score"] == round(alone["png_bytes"], 4)


def test_cli_all_good_exits_zero_and_bad_bundle_exits_two(scorer: Scorer, cli_inputs: list[Path],
                                                          tmp_path: Path) -> None:
    runner = CliRunner()
    good = [str(p) for p in cli_inputs if p.name.startswith("good")]
    assert runner.invoke(app, ["score", "--bundle", str(scorer.bundle_dir), *good]).exit_code == 0
    broken = Path(shutil.copytree(scorer.bundle_dir, tmp_path / "broken"))
    (broken / "model.onnx").write_bytes(b"\x00" * 10)
    result = runner.invoke(app, ["score", "--bundle", str(broken), *good])
    assert result.exit_code == 2 and "re-export" in result.stderr and not result.stdout
    assert "Traceback" not in result.stderr


def test_cli_subprocess_without_torch(scorer: Scorer, cli_inputs: list[Path]) -> None:
    """`edge-iqa score --bundle` in a fresh process where torch cannot be imported (a camera):
    exit code 1, one JSON line per file, no traceback."""
    launcher = ("import sys; sys.modules['torch'] = None; from edge_iqa.cli import app; "
                "app(prog_name='edge-iqa')")
    args = ["score", "--json", "--bundle", str(scorer.bundle_dir), *map(str, cli_inputs)]
    proc = subprocess.run([sys.executable, "-c", launcher, *args], capture_output=True, text=True, timeout=120,
                          check=False, cwd=Path(__file__).resolve().parents[1])
    assert proc.returncode == 1, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == len(cli_inputs) and "Traceback" not in proc.stderr
    assert sum("score" in json.loads(line) for line in lines) == 3


def test_cli_scores_files_in_list_chunks_in_order(scorer: Scorer, cli_inputs: list[Path], alone: dict,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """`edge-iqa score a b c ...` runs the runtime's list path a chunk at a time: lines in the files'
    order across chunk boundaries, bad files reported where they stand, the same scores."""
    from edge_iqa.cli import score as score_cli

    monkeypatch.setattr(score_cli, "CHUNK", 2)
    good = {"good.png": "png_bytes", "good.webp": "webp_lossless", "rotated.jpg": "exif_orientation_6"}
    inputs = [p for p in cli_inputs if p.name in good] + cli_inputs  # good files in every chunk
    result = CliRunner().invoke(app, ["score", "--json", "--bundle", str(scorer.bundle_dir), *map(str, inputs)])
    assert result.exit_code == 1
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["image"] for r in records] == list(map(str, inputs))
    for record in records:
        name = Path(record["image"]).name
        assert ("score" in record) == (name in good), record
        if name in good:
            assert record["score"] == round(alone[good[name]], 4)
