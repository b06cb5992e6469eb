"""Copy a finished training run into the package as the embedded default weights.

Usage: python scripts/install_default_weights.py runs/clive_all930 [runs/clive_split0 ...]
Writes edge_iqa/weights/edge_hybrid_n.safetensors (fp16) + .json (config, preprocessing spec,
output transform, training metadata, and the split evaluation when split runs are given) and
copies the CLIVE copyright notice beside them.
"""

from __future__ import annotations

import json
import shutil
import statistics
import sys
from pathlib import Path

import torch

from edge_iqa.checksums import sha256_file
from edge_iqa.data.preprocess import PreprocessSpec
from edge_iqa.models import create_model
from edge_iqa.models.checkpoint import read_config, save_checkpoint

ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / "edge_iqa" / "weights" / "edge_hybrid_n.safetensors"


def main(run: Path, split_runs: list[Path]) -> None:
    weights = run / "last.safetensors"
    config = read_config(weights)
    metrics = json.loads((run / "metrics.json").read_text())
    train_config = metrics["config"]
    data = Path(train_config["data"])
    model = create_model(config["model"], checkpoint=weights, **config["model_kwargs"])
    evaluation = []
    for folder in split_runs:
        split = json.loads((folder / "metrics.json").read_text())
        evaluation.append({"split_seed": split["split"]["split_seed"], **split["last_exact"]})
    summary = {m: statistics.median(e[m] for e in evaluation) for m in ("srocc", "plcc", "krcc", "rmse")} \
        if evaluation else {}
    metadata = {
        "trained_on": {"dataset": "LIVE In the Wild Image Quality Challenge (CLIVE), 930 development images",
                       "labels_sha256": sha256_file(data) if data.is_file() else None,
                       "images": metrics["split"]["train"],
                       "mos_range": [config["output_transform"]["offset"],
                                     config["output_transform"]["offset"] + config["output_transform"]["scale"]]},
        "recipe": metrics["recipe"], "epochs": metrics["last"]["epoch"], "steps": metrics["last"]["step"],
        "final_train_loss": metrics["last"]["train_loss"], "train_seconds": metrics["seconds"],
        "device": metrics["device"], "torch": torch.__version__,
        "command": ("edge-iqa train --model edge_hybrid_n --data ../shared/datasets/clive/labels.csv "
                    "--out runs/clive_all930 --seed 0 --val-fraction 0 --threads 1"),
        "config": train_config,
        "split_evaluation": {"protocol": "same recipe, seeded 80/20 splits, last-epoch model, deployment path",
                             "median": summary, "runs": evaluation},
        "backbone_init": "torchvision mobilenet_v2 ImageNet weights (mobilenet_v2-b0353104.pth, BSD-3-Clause)",
        "licences": "code Apache-2.0; MobileNetV2 init BSD-3-Clause (torchvision); trained on CLIVE "
                    "(LIVE_COPYRIGHT.txt)",
    }
    spec = PreprocessSpec.from_dict(config["preprocess"])
    save_checkpoint(model, TARGET, model_name=config["model"], preprocess=spec, model_kwargs=config["model_kwargs"],
                    output_transform=config["output_transform"],
                    metadata=metadata, dtype=torch.float16)
    notice = data.parent / "LIVE_COPYRIGHT.txt"
    shutil.copyfile(notice, TARGET.parent / "LIVE_COPYRIGHT.txt")
    print(f"wrote {TARGET} ({TARGET.stat().st_size / 1e6:.2f} MB) and {TARGET.with_suffix('.json')}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), [Path(p) for p in sys.argv[2:]])
