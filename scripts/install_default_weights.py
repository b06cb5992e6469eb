"""Copy a finished training run into the package as the embedded default weights.

Usage: python scripts/install_default_weights.py RUN [SPLIT_RUN ...] [--target PATH]
Writes edge_iqa/weights/edge_hybrid_n.safetensors (fp16) + .json (config, preprocessing spec,
output transform, training metadata: each training dataset with its label file's sha256 and image
counts, the `edge-iqa train` command that reproduces the run, and the split evaluation when split
runs are given) and puts each dataset's licence notice beside them: CLIVE's LIVE_COPYRIGHT.txt
(copied from the dataset folder) and, when BIQ2021 is among the datasets, BIQ2021_NOTICE.txt.
README.md beside them is written from the same metadata (datasets and their notices, the command,
recipe, training time, split evaluation): it always describes the weights that are installed.
A notice left from earlier weights whose dataset is no longer among the training data is removed.
A dataset we do not know is recorded as such and reported: check its licence before shipping.
After installing: scripts/refresh_after_weights.sh regenerates everything derived from the weights.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from edge_iqa.checksums import sha256_file
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


NOTICE_FILES = ("LIVE_COPYRIGHT.txt", "BIQ2021_NOTICE.txt")  # every notice this script may write

CITATIONS = {
    "clive": ("**LIVE In the Wild Image Quality Challenge Database (CLIVE)**, development images with their "
              "mean opinion scores (0-100). D. Ghadiyaram and A.C. Bovik, \"Massive Online Crowdsourced Study "
              "of Subjective and Objective Picture Quality,\" IEEE TIP 25(1), 2016; LIVE, The University of "
              "Texas at Austin, http://live.ece.utexas.edu/research/ChallengeDB/index.html. Its notice "
              "(`LIVE_COPYRIGHT.txt`, kept here in full) permits use, copying, modification and distribution "
              "provided the notice accompanies all copies and the source is acknowledged."),
    "biq2021": ("**BIQ2021**, Train split (MOS 0-1 from 30 observers). N. Ahmed and S. Asif, \"BIQ2021: a "
                "large-scale blind image quality assessment database,\" J. Electronic Imaging 31(5) 053010, "
                "2022; https://github.com/nisarahmedrana/BIQ2021 (commit 62c7b40). Published as free for use "
                "and benchmarking; subset 3 comes from Unsplash (`BIQ2021_NOTICE.txt`). The Test split was not "
                "used for training, validation or any choice: it is scored once, for the report."),
}


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


def _datasets(config: dict, metrics: dict) -> list[dict]:
    """Per training dataset: what it is, its label file's hash, images used for training."""
    stored = config["metadata"].get("datasets")
    if not stored:  # runs from before multi-dataset training: one dataset, counts in metrics["split"]
        data = Path(metrics["config"]["data"])
        stored = [{"name": data.parent.name, "data": str(data), "labels_sha256": sha256_file(data) if data.is_file()
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
    metadata["init"] = metrics.get("init")
    target.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(model, target, model_name=config["model"], preprocess=spec, model_kwargs=config["model_kwargs"],
                    output_transform=config["output_transform"], metadata=metadata, dtype=torch.float16)
    for entry in datasets:
        if entry["kind"] == "clive":
            shutil.copyfile(Path(entry["data"]).parent / "LIVE_COPYRIGHT.txt", target.parent / "LIVE_COPYRIGHT.txt")
        elif entry["kind"] == "biq2021":
            (target.parent / "BIQ2021_NOTICE.txt").write_text(BIQ2021_NOTICE)
    for stale in set(NOTICE_FILES) - set(notices):  # a notice of data these weights were not trained on
        (target.parent / stale).unlink(missing_ok=True)
    (target.parent / "README.md").write_text(weights_readme(target.name, config, metadata, notices))
    for path in unknown:
        print(f"warning: {path} is not a dataset we know; check its licence before shipping these weights",
              file=sys.stderr)
    print(f"wrote {target} ({target.stat().st_size / 1e6:.2f} MB), {target.with_suffix('.json')} and "
          f"{', '.join(notices) or 'no notice'}")
    return metadata


def weights_readme(weights_name: str, config: dict, metadata: dict, notices: list[str]) -> str:
    """The README beside the weights, from what was installed (nothing in it is typed by hand)."""
    pre = config["preprocess"]
    size = " x ".join(str(v) for v in pre["input_size"])
    files = [
        f"| `{weights_name}` | trained weights of `{config['model']}` (fp16; loaded into fp32), used by "
        f"`create_model(\"{config['model']}\", pretrained=True)` and `edge-iqa score` |",
        f"| `{Path(weights_name).with_suffix('.json')}` | its config: model, preprocessing ({size} {pre['crop']} crop "
        f"after `{pre['resize']}` resize, ImageNet mean/std), output transform (raw output x scale + offset: "
        f"{metadata['output_scale']}), training metadata (`metadata`: datasets, command, recipe, split "
        "evaluation) |",
        *[f"| `{name}` | licence notice of a training dataset; must accompany these weights |" for name in notices],
    ]
    data = []
    for entry in metadata["trained_on"]:
        counts = (f"{entry['train_images']} training images" + (f", {entry['val_images']} held out for validation"
                                                                 if entry.get("val_images") else ""))
        text = CITATIONS.get(entry["kind"], f"**{entry['dataset']}**: licence UNKNOWN, check it before shipping.")
        low, high = entry["mos_range"]
        data.append(f"- {text} Used: `{entry['data']}` ({counts}; labels sha256 "
                    f"`{str(entry.get('labels_sha256'))[:16]}...`; MOS {low:g}..{high:g} maps onto the output scale).")
    cfg = metadata["config"]
    epochs = f"{metadata['epochs']} epoch{'s' if metadata['epochs'] != 1 else ''}"
    facts = [f"recipe `{metadata['recipe']}`", f"{epochs} ({metadata['steps']} steps)",
             f"final training loss {metadata['final_train_loss']:.4f}",
             f"{metadata['train_seconds'] / 3600:.2f} h wall time on `{metadata['device']}` "
             f"(torch {metadata['torch']})"]
    if cfg.get("freeze_through") is not None:
        facts.append(f"backbone blocks 0..{cfg['freeze_through']} frozen at their ImageNet initialisation")
    facts.append("no synthetic pre-training (`--init` not used)" if not cfg.get("init")
                 else f"initialised from `{cfg['init']}` (`--init`)")
    median = metadata["split_evaluation"]["median"]
    evaluation = (f"Median over {len(metadata['split_evaluation']['runs'])} seeded splits (same recipe, last-epoch "
                  "model, deployment path): " + ", ".join(f"{k.upper()} {v:.4f}" for k, v in median.items()) + "."
                  if median else "No split evaluation was given to the install script; `docs/training.md` has the "
                  "measured figures and their commands.")
    return "\n".join([
        "# Embedded weights", "",
        "Written by `scripts/install_default_weights.py` from the training run's `metrics.json` and checkpoint "
        "config; re-run the script instead of editing this file.", "",
        "| file | what |", "|---|---|", *files, "",
        "## Data", "", *data, "",
        "## Recipe", "", "Exact command (replays the run's configuration through the CLI):", "", "```bash",
        metadata["command"], "```", "", "; ".join(facts) + ".", "",
        "## Evaluation", "", evaluation, "", "The BIQ2021 Test split and the CLIVE figures of the shipped model: "
        "`bench/reports/full` (`edge-iqa bench`, evaluation sets `clive` and `biq2021-test`).", "",
        "## Licences", "",
        "- The trained weights: Apache-2.0, like the rest of edge-iqa, subject to the notices of the data they "
        f"were trained on ({', '.join(f'`{n}`' for n in notices) or 'none known'}).",
        f"- Initialisation: {metadata['backbone_init']}.", "",
    ])


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
