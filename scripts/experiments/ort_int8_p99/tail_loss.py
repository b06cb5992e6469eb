"""By hand: fine-tune ORT's post-training Q/DQ graph with a tail-weighted loss (d^2 + d^4 / 4, MOS points)."""

import random
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from bundle_copy import save_bundle  # noqa: E402
from distillation_setup import trial  # noqa: E402

from edge_iqa.export import calibration, qat

SRC, OUT, STEPS = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(2)
setup = trial(SRC)
quant, split, spec, scale, teacher, graph, net = (setup.quant, setup.split, setup.spec, setup.scale, setup.teacher,
                                                  setup.graph, setup.net)
params = list(net.parameters())
opt = torch.optim.Adam(params, lr=1e-5, eps=1e-12)
sched = qat.cosine_decay(opt, STEPS)
draw = random.Random(quant.seed)
torch.manual_seed(quant.seed)
files = [calibration.image_file(r) for r in split.calibration]
t = time.time()
losses = []
for _step in range(STEPS):
    px = np.concatenate([qat._augmented_pixels(draw, draw.choice(files), spec) for _ in range(qat.BATCH)])
    with torch.no_grad():
        want = teacher(torch.from_numpy(spec.normalize_pixels(px)))
    d = (net(torch.from_numpy(px))[0].reshape(-1) - want) * scale
    loss = torch.mean(d**2 + d**4 / 4)
    opt.zero_grad()
    loss.backward()
    opt.step()
    sched.step()
    losses.append(float(torch.mean(d.detach() ** 2)))
print(f"mse {np.mean(losses[:25]):.3f} -> {np.mean(losses[-25:]):.3f} in {time.time() - t:.0f}s", flush=True)
net.write_weights(graph)
save_bundle(graph, SRC, OUT)
