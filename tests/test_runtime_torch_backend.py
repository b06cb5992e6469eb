"""PyTorch is a runtime backend: ``edge_iqa.runtime.load`` of a checkpoint or a model name gives the
same Scorer as a bundle (one scoring path), with scores equal to the network run by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edge_iqa.data.imageio import load_image  # noqa: E402
from edge_iqa.errors import BundleError, CheckpointError  # noqa: E402
from edge_iqa.models import create_model  # noqa: E402
from edge_iqa.models.checkpoint import save_checkpoint  # noqa: E402
from edge_iqa.models.edge_hybrid import EDGE_HYBRID_PREPROCESS  # noqa: E402
from edge_iqa.runtime import Scorer, load  # noqa: E402
from tests.helpers_runtime import any_photos  # noqa: E402

TRANSFORM = {"scale": 37.0, "offset": 11.5}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(3)
    model = create_model("edge_hybrid_n")
    folder = tmp_path_factory.mktemp("ckpt")
    return save_checkpoint(model, folder / "net", model_name="edge_hybrid_n", preprocess=EDGE_HYBRID_PREPROCESS,
                           output_transform=TRANSFORM)


def _by_hand(model: torch.nn.Module, photos: list[Path]) -> np.ndarray:
    """decode -> spec -> network -> crop mean -> transform, written out without the Scorer."""
    out = []
    with torch.inference_mode():
        for photo in photos:
            rows = torch.from_numpy(EDGE_HYBRID_PREPROCESS.apply(load_image(photo)))
            out.append(float(model(rows).double().mean()) * TRANSFORM["scale"] + TRANSFORM["offset"])
    return np.array(out)


def test_checkpoint_loads_as_a_torch_scorer_with_the_bundle_api(checkpoint: Path) -> None:
    photos = any_photos(3)
    scorer = load(checkpoint)
    assert isinstance(scorer, Scorer) and scorer.manifest.runtime == "torch" and scorer.info["backend"] == "torch"
    assert scorer.info["model"] == "edge_hybrid_n" and (scorer.scale, scorer.offset) == (37.0, 11.5)
    model = create_model("edge_hybrid_n", checkpoint=checkpoint)
    # float32 network batched differently (3 images per call vs one): float32 rounding, on a 37x scale.
    np.testing.assert_allclose(scorer.score(photos), _by_hand(model, photos), rtol=0, atol=1e-4)
    rows = np.concatenate([scorer.preprocess(p) for p in photos])
    raw = scorer.score_tensor(rows, raw=True)
    np.testing.assert_allclose(raw * 37.0 + 11.5, scorer.score(photos), rtol=0, atol=1e-9)
    assert scorer.manifest.sha256(checkpoint.name) == scorer.manifest["model"]["weights"]["sha256"]


def test_model_name_and_foreign_state_dict(tmp_path: Path, checkpoint: Path) -> None:
    by_name = load("edge_hybrid_n")
    assert by_name.manifest.runtime == "torch" and by_name.manifest.model_file == "edge_hybrid_n.safetensors"
    state = tmp_path / "plain.pth"
    torch.save(create_model("edge_hybrid_n", checkpoint=checkpoint).state_dict(), state)
    foreign = load(state, model="edge_hybrid_n")  # no JSON: registry preprocessing, raw output
    assert (foreign.scale, foreign.offset) == (1.0, 0.0)
    photo = any_photos(1)
    np.testing.assert_allclose(foreign.score(photo) * 37.0 + 11.5, load(checkpoint).score(photo), atol=1e-9)
    with pytest.raises(CheckpointError, match="naming its model"):
        load(state)
    with pytest.raises(CheckpointError, match="not topiq"):
        load(checkpoint, model="topiq")
    with pytest.raises(BundleError, match="not a bundle folder"):
        load("no_such_model_or_bundle")
