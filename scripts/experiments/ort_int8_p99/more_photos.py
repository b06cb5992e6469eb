"""By hand: fine-tune ORT's post-training Q/DQ graph as `qat._distil` does (same loss, crops, schedule,
seed), on the 128 calibration photos plus the photos listed in a file (unlabeled: only the FP32
model's scores are used), to see whether a larger pool lowers the error on photos never seen.

    python scripts/experiments/ort_int8_p99/more_photos.py POST_TRAINING_BUNDLE OUT STEPS LIST [THREADS [SEED]]

LIST: a text file of image paths relative to its folder (an empty file: the calibration photos only,
i.e. the export's own fine-tuning); SEED: the draws' seed (default: the profile's).
"""

import dataclasses
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bundle_copy import save_bundle  # noqa: E402
from distillation_setup import trial  # noqa: E402

from edge_iqa.export import calibration, qat

SRC, OUT, STEPS, LIST = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
torch.set_num_threads(int(sys.argv[5]) if len(sys.argv) > 5 else 2)
setup = trial(SRC)
quant, split, spec, scale, teacher, graph, net = (setup.quant, setup.split, setup.spec, setup.scale, setup.teacher,
                                                  setup.graph, setup.net)
if len(sys.argv) > 6:
    quant = dataclasses.replace(quant, seed=int(sys.argv[6]))
params = list(net.parameters())
opt = torch.optim.Adam(params, lr=quant.qat_learning_rate, eps=1e-12)
sched = qat.cosine_decay(opt, STEPS)
draw = random.Random(quant.seed)
torch.manual_seed(quant.seed)
extra = [LIST.parent / line.strip() for line in LIST.read_text().splitlines() if line.strip()]
files = [calibration.image_file(r) for r in split.calibration] + extra
print(f"{len(files)} photos ({len(extra)} from {LIST})", flush=True)
t = time.time()
losses = []
for step in range(STEPS):
    px = np.concatenate([qat._augmented_pixels(draw, draw.choice(files), spec) for _ in range(qat.BATCH)])
    with torch.no_grad():
        want = teacher(torch.from_numpy(spec.normalize_pixels(px)))
    loss = torch.mean(((net(torch.from_numpy(px))[0].reshape(-1) - want) * scale) ** 2)
    opt.zero_grad()
    loss.backward()
    opt.step()
    sched.step()
    losses.append(float(loss.detach()))
    if step % 100 == 99:
        print(f"step {step + 1}: mse {np.mean(losses[-100:]):.3f} ({time.time() - t:.0f}s)", flush=True)
print(f"mse {np.mean(losses[:25]):.3f} -> {np.mean(losses[-25:]):.3f} in {time.time() - t:.0f}s", flush=True)
net.write_weights(graph)
save_bundle(graph, SRC, OUT)
