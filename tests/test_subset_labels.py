"""scripts/subset_labels.py: seeded subsets and a run's split parts, on the real CLIVE labels."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from edge_iqa.data.datasets import read_labels, train_val_split

ROOT = Path(__file__).resolve().parents[1]
CLIVE = ROOT.parent / "shared" / "datasets" / "clive"
pytestmark = pytest.mark.skipif(not (CLIVE / "labels.csv").is_file(), reason="../shared/datasets/clive is not present")


@pytest.fixture(scope="module")
def script():  # noqa: ANN201
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import subset_labels
    finally:
        sys.path.pop(0)
    return subset_labels


def test_subset_is_seeded_and_its_split_part_is_the_runs_split(script, tmp_path: Path) -> None:  # noqa: ANN001
    source = read_labels(CLIVE / "labels.csv")
    assert script.main([str(CLIVE / "labels.csv"), "50", "--seed", "3", "--out", str(tmp_path / "a" / "s.csv")]) == 0
    assert script.main([str(CLIVE / "labels.csv"), "50", "--seed", "3", "--out", str(tmp_path / "b.csv")]) == 0
    first, again = read_labels(tmp_path / "a" / "s.csv"), read_labels(tmp_path / "b.csv")
    same = [p.resolve() for p in first.paths] == [p.resolve() for p in again.paths]
    assert same and len(first) == 50  # same seed, same images (paths are relative to each CSV)
    chosen = np.sort(np.random.default_rng(3).permutation(len(source))[:50])
    assert [p.resolve() for p in first.paths] == [source.paths[i].resolve() for i in chosen]

    out = tmp_path / "val.csv"
    args = [str(tmp_path / "b.csv"), "--split-part", "val", "--val-fraction", "0.2", "--split-seed", "1",
            "--out", str(out)]
    assert script.main(args) == 0
    _, val = train_val_split(50, 0.2, 1)
    held_out = read_labels(out)
    assert [p.resolve() for p in held_out.paths] == [first.paths[i].resolve() for i in val]
    np.testing.assert_allclose(held_out.mos, first.mos[val])


def test_bad_arguments_are_errors_that_write_nothing(script, tmp_path: Path,  # noqa: ANN001
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "x.csv"
    assert script.main([str(CLIVE / "labels.csv"), "5000", "--out", str(out)]) == 2
    assert "count must be between 2 and 930" in capsys.readouterr().err
    assert script.main([str(CLIVE / "labels.csv"), "--out", str(out)]) == 2
    assert "either N" in capsys.readouterr().err
    assert not out.exists()
