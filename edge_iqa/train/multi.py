"""Several MOS datasets in one run: per-dataset splits, scales and batches.

Datasets come from different studies: their MOS scales differ (CLIVE 0..100, BIQ2021 0..1) and a
score of one study cannot be compared with a score of another. So

- each dataset gets its own seeded train/val split (:func:`edge_iqa.data.datasets.train_val_split`
  with the same ``split_seed``: adding a dataset never changes another's split);
- each dataset's MOS is normalised to [0, 1] by the min/max of its own training part (its
  ``transform``), and the model learns one output scale: ``MODEL_SCALE`` (0..100, higher is
  better) when more than one dataset is used, the dataset's own MOS scale when only one is;
- every batch holds images of one dataset only (:func:`plan_batches`), and the loss computes its
  rank and correlation terms within each dataset anyway (:class:`edge_iqa.train.losses.IQALoss`
  with ``groups``), so no pair across two studies ever enters the loss;
- the checkpoint stores each dataset's mapping (:class:`DatasetMapping`) so a model score can be
  read on any training dataset's MOS scale (:meth:`DatasetMapping.to_dataset_mos`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge_iqa.checksums import sha256_file
from edge_iqa.data.datasets import LabelFile, mos_transform, normalise_mos, train_val_split
from edge_iqa.errors import DatasetError

# The documented output scale of a model trained on several datasets: 0 (worst) .. 100 (best).
MODEL_SCALE = {"scale": 100.0, "offset": 0.0}


@dataclass(frozen=True)
class DatasetMapping:
    """How one training dataset's MOS relates to the model's output scale (stored in the checkpoint).

    Both are affine images of the same normalised value ``r`` in [0, 1] (0 = the training part's
    lowest MOS, 1 = its highest): ``MOS = r * mos_scale + mos_offset`` and
    ``score = r * model_scale + model_offset``."""

    name: str
    data: str
    labels_sha256: str
    images: int
    train_images: int
    val_images: int
    mos_scale: float
    mos_offset: float
    model_scale: float
    model_offset: float

    def to_dataset_mos(self, score: np.ndarray | float) -> np.ndarray:
        r = (np.asarray(score, dtype=np.float64) - self.model_offset) / self.model_scale
        return r * self.mos_scale + self.mos_offset

    def to_model_score(self, mos: np.ndarray | float) -> np.ndarray:
        r = (np.asarray(mos, dtype=np.float64) - self.mos_offset) / self.mos_scale
        return r * self.model_scale + self.model_offset

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class DatasetPart:
    """One dataset inside the combined label list: global train/val indices and its mapping."""

    mapping: DatasetMapping
    train_idx: np.ndarray
    val_idx: np.ndarray


@dataclass(frozen=True)
class Combined:
    """All datasets of a run: one label list, a dataset id per image, targets in [0, 1] per dataset."""

    labels: LabelFile
    files: tuple[LabelFile, ...]  # the datasets, in order; ``labels`` is their concatenation
    group: np.ndarray  # dataset index of each image
    targets: np.ndarray  # float32, normalised per dataset by its training part
    parts: tuple[DatasetPart, ...]
    output_transform: dict[str, float]

    @property
    def train_idx(self) -> np.ndarray:
        return np.concatenate([p.train_idx for p in self.parts])

    @property
    def val_idx(self) -> np.ndarray:
        return np.concatenate([p.val_idx for p in self.parts])


def dataset_name(source: Path) -> str:
    """A short readable name: ``clive/labels``, ``biq2021/train``."""
    return f"{source.parent.name}/{source.stem}"


Split = tuple[np.ndarray, np.ndarray]  # (train, val) indices within one dataset


def per_dataset(values: list[Any], datasets: int, flag: str) -> list[Any]:
    """A per-dataset option (``--val-fraction``, ``--repeat``): one value for every dataset, or one
    per ``--data`` file in the same order."""
    if len(values) == 1:
        values = values * datasets
    if len(values) != datasets:
        raise DatasetError(f"{len(values)} {flag} values for {datasets} --data files; "
                           "give one for all or one per --data, in the same order")
    return values


def seeded_splits(label_files: list[LabelFile], val_fractions: list[float], split_seed: int) -> list[Split]:
    """Each dataset's own seeded train/val split (``val_fractions``: one for all, or one per dataset)."""
    if not label_files:
        raise DatasetError("no dataset given; pass --data CSV (repeat it for several datasets)")
    val_fractions = per_dataset(val_fractions, len(label_files), "--val-fraction")
    return [train_val_split(len(f), fraction, split_seed)
            for f, fraction in zip(label_files, val_fractions, strict=True)]


def combine(label_files: list[LabelFile], splits: list[Split]) -> Combined:
    """Normalise each dataset by its own training part and concatenate them; ``splits``: one (train,
    val) pair per dataset (:func:`seeded_splits`, or one fold of a k-fold)."""
    if not label_files or len(splits) != len(label_files):
        raise DatasetError(f"{len(splits)} splits for {len(label_files)} datasets; pass one per --data file")
    names = [dataset_name(f.source) for f in label_files]
    if len(set(names)) != len(names):
        names = [f"{i}:{n}" for i, n in enumerate(names)]
    single = len(label_files) == 1
    groups, targets, parts, offset = [], [], [], 0
    output: dict[str, float] = {}
    for index, (labels, (train, val), name) in enumerate(zip(label_files, splits, names, strict=True)):
        transform = mos_transform(labels.mos[train])
        output = dict(transform) if single else dict(MODEL_SCALE)
        mapping = DatasetMapping(
            name=name, data=str(labels.source), labels_sha256=sha256_file(labels.source),
            images=len(labels), train_images=len(train), val_images=len(val),
            mos_scale=transform["scale"], mos_offset=transform["offset"],
            model_scale=output["scale"], model_offset=output["offset"])
        parts.append(DatasetPart(mapping, np.asarray(train) + offset, np.asarray(val) + offset))
        groups.append(np.full(len(labels), index, dtype=np.int64))
        targets.append(normalise_mos(labels.mos, transform).astype(np.float32))
        offset += len(labels)
    source = label_files[0].source if single else Path("+".join(str(f.source) for f in label_files))
    items = tuple(item for labels in label_files for item in labels.items)
    return Combined(LabelFile(source, items), tuple(label_files), np.concatenate(groups), np.concatenate(targets),
                    tuple(parts), output)


def plan_batches(parts: list[np.ndarray], batch_size: int, rng: np.random.Generator,
                 repeats: list[int] | None = None) -> list[np.ndarray]:
    """One epoch's batches: each dataset's training indices shuffled and cut into batches (a last
    batch of fewer than 2 images is dropped: it carries no pair), ``repeats[i]`` times for dataset
    ``i`` (each pass its own shuffle; default once), then all batches shuffled. Repeating a small
    dataset gives it a larger share of the steps without changing any batch's composition rule."""
    batches = []
    for indices, passes in zip(parts, repeats or [1] * len(parts), strict=True):
        for _ in range(passes):
            order = rng.permutation(indices)
            batches.extend(chunk for start in range(0, len(order), batch_size)
                           if len(chunk := order[start : start + batch_size]) >= 2)
    return [batches[i] for i in rng.permutation(len(batches))]


def count_batches(sizes: list[int], batch_size: int, repeats: list[int] | None = None) -> int:
    """How many batches :func:`plan_batches` makes for datasets of these training sizes."""
    return sum(passes * (n // batch_size + (1 if n % batch_size >= 2 else 0))
               for n, passes in zip(sizes, repeats or [1] * len(sizes), strict=True))


def dataset_repeats(repeat: int | list[int], datasets: int) -> list[int]:
    """``--repeat``: one value for every dataset, or one per ``--data`` file, each at least 1."""
    values = per_dataset([int(r) for r in (repeat if isinstance(repeat, list | tuple) else [repeat])], datasets,
                         "--repeat")
    if min(values) < 1:
        raise DatasetError(f"--repeat must be at least 1 (passes over a dataset per epoch), got {values}")
    return values


__all__ = ["MODEL_SCALE", "Combined", "DatasetMapping", "DatasetPart", "combine", "count_batches",
           "dataset_name", "dataset_repeats", "per_dataset", "plan_batches", "seeded_splits"]
