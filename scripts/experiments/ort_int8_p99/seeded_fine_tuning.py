"""By hand: the export's ONNX Runtime fine-tuning (`qat.fine_tune_graph`, the shipped profile's steps,
learning rate and calibration photos) of a post-training bundle, with another seed for its crops and
the activation scales fixed or trained: a second, paired draw of each recipe (fifth session).

    python scripts/experiments/ort_int8_p99/seeded_fine_tuning.py POST_TRAINING_BUNDLE OUT SEED fixed|trained [THREADS]

Only the fine-tuning's seed changes: the profile's seed also draws the calibration / validation split,
which stays the shipped one.
"""

import dataclasses
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bundle_copy import save_bundle  # noqa: E402
from distillation_setup import trial  # noqa: E402

from edge_iqa.export import qat
from edge_iqa.export.targets import load_target

SRC, OUT, SEED, SCALES = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
torch.set_num_threads(int(sys.argv[5]) if len(sys.argv) > 5 else 2)
setup = trial(SRC)
profile = load_target("onnxruntime")
profile = dataclasses.replace(profile, quantization=dataclasses.replace(
    profile.quantization, seed=SEED, qat_activation_scales=SCALES))
base = {"tool": "onnxruntime.quantization (post-training bundle " + SRC.name + ")"}
tuned = qat.fine_tune_graph(SRC / "model.onnx", base, setup.teacher.model, setup.spec, ("image",),
                            setup.split.calibration, profile, pixel_input=True, out_scale=setup.scale)
aware = tuned.record["quantization_aware"]
print(f"seed {SEED}, scales {SCALES}: loss {aware['loss_first_mos2']} -> {aware['loss_last_mos2']} in "
      f"{aware['seconds']} s; {aware['activation_scales']}", flush=True)
save_bundle(tuned.model, SRC, OUT)
