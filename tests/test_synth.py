"""Synthetic labelled data: packaged KADID statistics, the transfer rule on a rated fixture whose
answer is known by construction, the full-reference fallback end to end on real photos, the CLI."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from edge_iqa.cli import app
from edge_iqa.cli.synth import parse_levels
from edge_iqa.data.imageio import load_image
from edge_iqa.data.synth import (
    FR_METRICS,
    PERCENTILES,
    SynthConfig,
    generate,
    load_level_stats,
    load_rated_dataset,
    read_kadid_score_file,
    severity_alignment,
    transfer_score,
)
from edge_iqa.errors import DatasetError

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
PRISTINE = SHARED / "datasets" / "pristine" / "images"


def _photo(name: str, side: int) -> np.ndarray:
    if not PRISTINE.is_dir():
        pytest.skip(f"pristine photos not found at {PRISTINE} (the shared data set sits beside the checkout)")
    with Image.open(PRISTINE / name) as image:
        image = image.convert("RGB")
        image.thumbnail((side, side), Image.Resampling.LANCZOS)
        return np.asarray(image)


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


# --- packaged statistics ------------------------------------------------------------------------------
def test_packaged_kadid_statistics_cover_every_type_and_level() -> None:
    stats = load_level_stats()
    assert len(stats) == 125
    for s in stats.values():
        assert s.count == 81  # KADID-10k: 81 references per type and level
        assert 1.0 <= s.percentiles[0] <= s.mean <= s.percentiles[-1] <= 5.0
        assert np.all(np.diff(s.percentiles) >= 0)
        assert s.quantile(0.5) == pytest.approx(s.percentiles[PERCENTILES.index(50.0)])
    # Blur gets worse with level in KADID-10k; mean shift peaks in the middle (its levels mix signs).
    assert [round(stats["gaussian_blur", lv].mean, 2) for lv in range(1, 6)] == sorted(
        (round(stats["gaussian_blur", lv].mean, 2) for lv in range(1, 6)), reverse=True)
    alignment = severity_alignment(stats)
    assert all(alignment["jpeg", lv] == lv for lv in range(1, 6))
    best = max(range(1, 6), key=lambda lv: stats["mean_shift", lv].mean)
    assert alignment["mean_shift", 1] == best != 1


# --- transfer rule --------------------------------------------------------------------------------------
def test_transfer_score_weights_nearest_references() -> None:
    similarity = np.array([0.2, 0.9, 0.5, 0.95])
    scores = np.array([1.0, 2.0, 3.0, np.nan])  # the most similar reference has no score: skipped
    score, nearest, weights = transfer_score(similarity, scores, k=1)
    assert score == 2.0 and nearest.tolist() == [1]
    score, nearest, weights = transfer_score(similarity, scores, k=2, temperature=0.1)
    expected_w = np.exp(np.array([0.9, 0.5]) / 0.1) / np.exp(np.array([0.9, 0.5]) / 0.1).sum()
    assert nearest.tolist() == [1, 2] and weights == pytest.approx(expected_w)
    assert score == pytest.approx(expected_w @ np.array([2.0, 3.0]))
    with pytest.raises(DatasetError):
        transfer_score(similarity, np.full(4, np.nan))


RATED_REFS = ("p010.webp", "p060.webp", "p120.webp")
# Scores of the fixture: reference offset + a per-level profile. mean_shift's profile peaks at
# level 3, so our mildest mean shift (level 1) must take the rated level-3 score.
PROFILE = {"gaussian_blur": [4.5, 4.0, 3.0, 2.0, 1.5], "mean_shift": [3.0, 3.4, 3.6, 3.2, 2.6]}


def _rated_score(ref_index: int, name: str, level: int) -> float:
    return round(PROFILE[name][level - 1] + 0.1 * ref_index, 3)


@pytest.fixture(scope="module")
def rated_fixture(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A KADID-layout rated set of three photos, and new references that are their mirror images."""
    root = tmp_path_factory.mktemp("rated")
    (root / "images").mkdir()
    refs = tmp_path_factory.mktemp("new_refs")
    rows = []
    for index, name in enumerate(RATED_REFS):
        photo = _photo(name, 160)
        ref_name = f"I{index + 1:02d}.png"
        Image.fromarray(photo).save(root / "images" / ref_name)
        # New content: the mirrored, slightly cropped photo (its nearest rated reference is known).
        Image.fromarray(np.ascontiguousarray(photo[4:-4, ::-1])).save(refs / f"new{index}.png")
        for kid, kind in ((1, "gaussian_blur"), (18, "mean_shift")):
            for level in range(1, 6):
                rows.append([f"I{index + 1:02d}_{kid:02d}_{level:02d}.png", ref_name,
                             _rated_score(index, kind, level), 0.1])
    with open(root / "dmos.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["dist_img", "ref_img", "dmos", "var"])
        writer.writerows(rows)
    return root, refs


def test_rated_dataset_is_read_in_kadid_layout(rated_fixture: tuple[Path, Path]) -> None:
    dataset = load_rated_dataset(rated_fixture[0])
    assert sorted(dataset.references) == ["I01.png", "I02.png", "I03.png"]
    assert dataset.scores["I02.png", "mean_shift", 3] == _rated_score(1, "mean_shift", 3)
    assert dataset.alignment["mean_shift", 1] == 3 and dataset.alignment["gaussian_blur", 1] == 1
    assert [r[2:4] for r in read_kadid_score_file(rated_fixture[0] / "dmos.csv")][:2] == [
        ("gaussian_blur", 1), ("gaussian_blur", 2)]


def _needs_backbone() -> None:
    pytest.importorskip("torchvision")
    from edge_iqa.errors import CheckpointError
    from edge_iqa.models.pretrained import find_weights_file

    try:
        find_weights_file("mobilenet_v2-b0353104.pth")
    except CheckpointError as exc:
        pytest.skip(f"ImageNet MobileNetV2 weights not available offline: {exc}")


def test_transfer_gives_the_score_of_the_same_type_and_level_on_the_nearest_content(
    rated_fixture: tuple[Path, Path], tmp_path: Path
) -> None:
    _needs_backbone()
    root, refs = rated_fixture
    config = SynthConfig(types=("gaussian_blur", "mean_shift"), k=1, max_side=None)
    rows = _read_csv(generate(refs, tmp_path / "k1", config, rated=root))
    assert len(rows) == 3 * 2 * 5
    aligned = {1: 3, 2: 2, 3: 4, 4: 1, 5: 5}  # order of PROFILE["mean_shift"] by falling score
    for row in rows:
        index = int(row["ref"].removeprefix("new").removesuffix(".png"))
        level = int(row["level"])
        rated_level = aligned[level] if row["dist_type"] == "mean_shift" else level
        assert int(row["rated_level"]) == rated_level
        assert float(row["mos"]) == pytest.approx(_rated_score(index, row["dist_type"], rated_level))
        assert row["neighbours"].startswith(f"I{index + 1:02d}.png:")

    # k = all three with a flat softmax: the plain mean of the three references' scores.
    flat = SynthConfig(types=("gaussian_blur",), levels=(2,), k=3, temperature=1e6, max_side=None)
    for row in _read_csv(generate(refs, tmp_path / "k3", flat, rated=root)):
        assert float(row["mos"]) == pytest.approx(np.mean([_rated_score(i, "gaussian_blur", 2) for i in range(3)]))


def test_rated_dataset_errors_say_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="dmos.csv"):
        load_rated_dataset(tmp_path)
    (tmp_path / "dmos.csv").write_text("dist_img,ref_img,dmos\nI01_01_01.png,I01.png,4.2\n")
    with pytest.raises(DatasetError, match="I01.png"):
        load_rated_dataset(tmp_path)


def test_tid2013_layout_maps_shared_types(tmp_path: Path) -> None:
    (tmp_path / "reference_images").mkdir()
    Image.new("RGB", (32, 32), (90, 120, 30)).save(tmp_path / "reference_images" / "I01.BMP")
    # TID2013 type 8 is Gaussian blur, 10 JPEG; 12 (JPEG transmission errors) has no KADID twin.
    (tmp_path / "mos_with_names.txt").write_text("5.1 i01_08_1.bmp\n3.2 i01_10_4.bmp\n4.0 i01_12_2.bmp\n")
    dataset = load_rated_dataset(tmp_path)
    assert dataset.scores == {("I01.BMP", "gaussian_blur", 1): 5.1, ("I01.BMP", "jpeg", 4): 3.2}


# --- full-reference fallback -------------------------------------------------------------------------
FALLBACK_TYPES = ("gaussian_blur", "jpeg", "mean_shift")


@pytest.fixture(scope="module")
def fallback_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, str]], list[np.ndarray]]:
    refs = tmp_path_factory.mktemp("pristine3")
    photos = []
    for name in ("p020.webp", "p070.webp", "p140.webp"):
        photo = _photo(name, 224)  # shorter side > 160 px, so MS-SSIM is defined
        photos.append(photo)
        Image.fromarray(photo).save(refs / name.replace(".webp", ".png"))
    out = tmp_path_factory.mktemp("synth_fallback")
    csv_path = generate(refs, out, SynthConfig(types=FALLBACK_TYPES, seed=3, max_side=None))
    return out, _read_csv(csv_path), photos


def test_fallback_writes_images_and_a_dataset_csv(fallback_run: tuple[Path, list[dict[str, str]], list]) -> None:
    out, rows, photos = fallback_run
    assert len(rows) == 3 * len(FALLBACK_TYPES) * 5
    assert list(rows[0])[:2] == ["image", "mos"]
    shapes = {f"p{n}.png": p.shape for n, p in zip(("020", "070", "140"), photos, strict=True)}
    for row in rows[::7]:
        image = load_image(out / row["image"])  # path relative to the CSV
        assert image.shape == shapes[row["ref"]]
    meta = json.loads((out / "synth_meta.json").read_text())
    assert meta["labels"]["rule"] == "fallback" and meta["count"] == len(rows)


def test_fallback_labels_follow_kadid_quantiles_in_fr_order(fallback_run: tuple[Path, list, list]) -> None:
    _, rows, _ = fallback_run
    stats = load_level_stats()
    alignment = severity_alignment(stats)
    groups: dict[tuple[str, int], list[dict[str, str]]] = {}
    for row in rows:
        groups.setdefault((row["dist_type"], int(row["level"])), []).append(row)
    for (name, level), members in groups.items():
        assert all(int(r["rated_level"]) == alignment[name, level] for r in members)
        target = stats[name, alignment[name, level]]
        mos = np.array([float(r["mos"]) for r in members])
        # Labels are KADID quantiles of the same type/level: inside its observed range.
        assert np.all(mos >= target.percentiles[0] - 1e-6) and np.all(mos <= target.percentiles[-1] + 1e-6)
        assert np.allclose(mos, target.quantile(np.array([float(r["group_position"]) for r in members])), atol=1e-3)
        # The image every FR metric rates best (GMSD lowest) gets the highest label of the group.
        values = {m: np.array([float(r[m]) for r in members]) for m in FR_METRICS}
        best = [np.argmax(values[m]) if m != "gmsd" else np.argmin(values[m]) for m in FR_METRICS]
        if len(set(best)) == 1:
            assert np.argmax(mos) == best[0]
    # Where KADID's mean score falls with level, so do the mean labels.
    for name in ("gaussian_blur", "jpeg"):
        means = [np.mean([float(r["mos"]) for r in groups[name, lv]]) for lv in range(1, 6)]
        assert all(a > b for a, b in zip(means, means[1:], strict=False)), (name, means)


# --- CLI ---------------------------------------------------------------------------------------------------
def test_parse_levels() -> None:
    assert parse_levels("1-5") == (1, 2, 3, 4, 5)
    assert parse_levels("1-2,5") == (1, 2, 5)
    with pytest.raises(Exception, match="1 to 5"):
        parse_levels("0-3")


def test_cli_synth_fallback_is_deterministic(tmp_path: Path) -> None:
    refs = tmp_path / "refs"
    refs.mkdir()
    for name in ("p030.webp", "p090.webp"):
        Image.fromarray(_photo(name, 200)).save(refs / name.replace(".webp", ".png"))
    runner = CliRunner()
    outputs = []
    for run in ("a", "b"):
        result = runner.invoke(app, ["synth", "--refs", str(refs), "--out", str(tmp_path / run), "--types", "noise",
                                     "--levels", "2,4", "--per-ref", "3", "--seed", "5"])
        assert result.exit_code == 0, result.output
        outputs.append(tmp_path / run / "synth.csv")
    first, second = (_read_csv(p) for p in outputs)
    assert len(first) == 2 * 3 and first == second
    assert {r["dist_type"] for r in first} <= {"white_noise", "white_noise_color", "impulse_noise",
                                               "multiplicative_noise", "denoise"}
    for row in first:
        a, b = (load_image(tmp_path / run / row["image"]) for run in ("a", "b"))
        np.testing.assert_array_equal(a, b)
    bad = runner.invoke(app, ["synth", "--refs", str(refs), "--out", str(tmp_path / "c"), "--types", "vaseline"])
    assert bad.exit_code == 2 and "vaseline" in bad.output
