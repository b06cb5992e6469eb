import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np
import onnx
from bundle_copy import save_bundle  # noqa: E402
from onnx import numpy_helper as nh

out, srcs = sys.argv[1], sys.argv[2:]
models = [onnx.load(s + "/model.onnx") for s in srcs]
inits = [{t.name: nh.to_array(t) for t in m.graph.initializer} for m in models]
base = models[0]
# scales/zero points must agree
nd = 0
avg = 0
for t in base.graph.initializer:
    arrs = [i[t.name] for i in inits]
    if all(np.array_equal(arrs[0], a) for a in arrs[1:]):
        continue
    a0 = arrs[0]
    if a0.dtype in (np.int8, np.uint8, np.int32):
        info = np.iinfo(a0.dtype)
        mean = np.mean([a.astype(np.float64) for a in arrs], axis=0)
        new = np.clip(np.rint(mean), info.min, info.max).astype(a0.dtype)
    else:
        new = np.mean(arrs, axis=0).astype(a0.dtype)
        if a0.size < 4:
            nd += 1
    avg += 1
    t.CopyFrom(nh.from_array(new, t.name))
print("averaged", avg, "tensors; small float ones", nd)
save_bundle(base, Path(srcs[0]), Path(out))
