"""Copy a finished training run into the package as the embedded default weights.

Usage: python scripts/install_default_weights.py RUN [SPLIT_RUN ...] [--target PATH]
Writes edge_iqa/weights/edge_hybrid_n.safetensors (fp16) + .json (config, preprocessing spec,
output transform, training metadata: each training dataset with its label file's sha256 and image
counts, the `edge-iqa train` command that reproduces the run, and the split evaluation when split
runs are given) and puts each dataset's licence notice beside them: CLIVE's LIVE_COPYRIGHT.txt
(copied from the dataset folder) and, when BIQ2021 is among the datasets, BIQ2021_NOTICE.txt.
A dataset we do not know is recorded as such and reported: check its licence before shipping.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from edge_iqa.data.biq2021 import SPLIT_FILES
from edge_iqa.data.preprocess import PreprocessSpec
from edge_iqa.models import create_model
from edge_iqa.models.checkpoint import read_config, save_checkpoint
from edge_iqa.train.command import train_command_line

ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / "edge_iqa" / "weights" / "edge_hybrid_n.safetensors"

BIQ2021_NOTICE = """\
BIQ2021: A Large-Scale Blind Image Quality Assessment Database

N. Ahmed and S. Asif, "BIQ2021: a large-scale blind image quality assessment database,"
Journal of Electronic Imaging 31(5), 053010 (2022), https://doi.org/10.1117/1.JEI.31.5.053010
Data: https://github.com/nisarahmedrana/BIQ2021 (commit 62c7b40): 12,000 images with mean opinion
scores from 30 observers; Train split 10,000 images, Test split 2,000 images.

The authors publish the database as free for use and benchmarking. Subset 3 (8,000 images) comes
from Unsplash.com, whose licence allows use of the images for scientific and commercial purposes.
The weights beside this notice were trained on (part of) the BIQ2021 Train split only; the Test
split was used solely to report the final model's accuracy.
"""


@dataclass(frozen=True)
class DatasetSource:
    """What we know about a training dataset: a description and the notice that must accompany it."""

    kind: str  # clive | biq2021 | unknown
    description: str
    notice: str  # file name written beside the weights ("" for none)


def identify(label_file: Path) -> DatasetSource:
    """CLIVE ships LIVE_COPYRIGHT.txt beside labels.csv; a BIQ2021 clone has its published CSVs."""
    folder = label_file.parent
    if (folder / "LIVE_COPYRIGHT.txt").is_file():
        return DatasetSource("clive", "LIVE In the Wild Image Quality Challenge (CLIVE), development images",
                             "LIVE_COPYRIGHT.txt")
    if all((folder / name).is_file() for name in SPLIT_FILES.values()):
        return DatasetSource("biq2021", "BIQ2021 (Ahmed & Asif, J. Electronic Imaging 31(5) 053010, 2022), "
                             "Train split", "BIQ2021_NOTICE.txt")
    return DatasetSource("unknown", f"user dataset {label_file}", "")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _datasets(config: dict, metrics: dict) -> list[dict]:
    """Per training dataset: what it is, its label file's hash, images used for training."""
    stored = config["metadata"].get("datasets")
    if not stored:  # runs from before multi-dataset training: one dataset, counts in metrics["split"]
        data = Path(metrics["config"]["data"])
        stored = [{"name": data.parent.name, "data": str(data), "labels_sha256": _sha256(data) if data.is_file()
                   else None, "train_images": metrics["split"]["train"], "val_images": metrics["split"]["val"],
                   "mos_scale": config["output_transform"]["scale"],
                   "mos_offset": config["output_transform"]["offset"],
                   "model_scale": config["output_transform"]["scale"],
                   "model_offset": config["output_transform"]["offset"]}]
    out = []
    for entry in stored:
        source = identify(Path(entry["data"]))
        out.append({"dataset": source.description, "kind": source.kind, **entry,
                    "mos_range": [entry["mos_offset"], entry["mos_offset"] + entry["mos_scale"]]})
    return out


def install(run: Path, split_runs: list[Path], target: Path = TARGET) -> dict:
    """Write the weights, their json and the dataset notices; returns the metadata written."""
    weights = run / "last.safetensors"
    config = read_config(weights)
    metrics = json.loads((run / "metrics.json").read_text())
    model = create_model(config["model"], checkpoint=weights, **config["model_kwargs"])
    evaluation = []
    for folder in split_runs:
        split = json.loads((folder / "metrics.json").read_text())
        evaluation.append({"split_seed": split["split"]["split_seed"], **split["last_exact"],
                           "per_dataset": split.get("last_exact_datasets")})
    summary = {m: statistics.median(e[m] for e in evaluation) for m in ("srocc", "plcc", "krcc", "rmse")} \
        if evaluation else {}
    datasets = _datasets(config, metrics)
    unknown = [d["data"] for d in datasets if d["kind"] == "unknown"]
    notices = sorted({identify(Path(d["data"])).notice for d in datasets} - {""})
    metadata = {
        "trained_on": datasets,
        "output_scale": ("0..100, higher is better (each training dataset's MOS maps onto it by "
                         "trained_on[].mos_range)" if len(datasets) > 1 else
                         f"the training dataset's MOS, {datasets[0]['mos_range']}, higher is better"),
        "recipe": metrics["recipe"], "epochs": metrics["last"]["epoch"], "steps": metrics["last"]["step"],
        "final_train_loss": metrics["last"]["train_loss"], "train_seconds": metrics["seconds"],
        "device": metrics["device"], "torch": torch.__version__,
        "command": train_command_line(metrics["config"]),
        "config": metrics["config"],
        "split_evaluation": {"protocol": "same recipe, seeded splits, last-epoch model, deployment path",
                             "median": summary, "runs": evaluation},
        "backbone_init": "torchvision mobilenet_v2 ImageNet weights (mobilenet_v2-b0353104.pth, BSD-3-Clause)",
        "licences": "code Apache-2.0; MobileNetV2 init BSD-3-Clause (torchvision); training data notices: "
                    + (", ".join(notices) or "none known") + (f"; UNKNOWN licence: {unknown}" if unknown else ""),
    }
    spec = PreprocessSpec.from_dict(config["preprocess"])
    target.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(model, target, model_name=config["model"], preprocess=spec, model_kwargs=config["model_kwargs"],
                    output_transform=config["output_transform"], metadata=metadata, dtype=torch.float16)
    for entry in datasets:
        if entry["kind"] == "clive":
            shutil.copyfile(Path(entry["data"]).parent / "LIVE_COPYRIGHT.txt", target.parent / "LIVE_COPYRIGHT.txt")
        elif entry["kind"] == "biq2021":
            (target.parent / "BIQ2021_NOTICE.txt").write_text(BIQ2021_NOTICE)
    for path in unknown:
        print(f"warning: {path} is not a dataset we know; check its licence before shipping these weights",
              file=sys.stderr)
    print(f"wrote {target} ({target.stat().st_size / 1e6:.2f} MB), {target.with_suffix('.json')} and "
          f"{', '.join(notices) or 'no notice'}")
    return metadata


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="the training run to ship (its last.safetensors)")
    parser.add_argument("split_runs", type=Path, nargs="*", help="runs of the same recipe on seeded splits")
    parser.add_argument("--target", type=Path, default=TARGET, help="weights file to write (default: the package's)")
    args = parser.parse_args(argv)
    install(args.run, args.split_runs, args.target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
