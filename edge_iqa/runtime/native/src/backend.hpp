// The network runner behind the scorer (the native twin of edge_iqa.runtime.backends.base.Backend):
// rows in the manifest's input encoding in (float32 NCHW rows or uint8 NHWC pixels), one raw score
// per row out. run() may be called from several threads at once and returns exactly what one thread
// would.
#pragma once

#include <memory>
#include <string>

#include "manifest.hpp"

namespace edgeiqa {

struct BackendOptions {
  int threads = 0;  // 0: none given (target threads or the library's default)
  std::string cache_dir;  // "": no compiled-model cache
  std::string device = "CPU";
};

// The Python runtime's default compiled-model cache (backends/openvino.py default_cache_dir):
// $EDGE_IQA_CACHE_DIR/openvino, else $XDG_CACHE_HOME (or ~/.cache)/edge-iqa/openvino, created if
// needed; "" when it cannot be written (a read-only home on a camera) or EDGE_IQA_CACHE_DIR="".
std::string default_cache_dir();

class Backend {
 public:
  virtual ~Backend() = default;
  // `rows` rows of the manifest's input encoding, back to back (3 x H x W floats, or H x W x 3 bytes;
  // exactly fixed_batch rows for a static-batch network) -> `rows` raw scores in `out`.
  virtual void run(const void* input, int rows, float* out) = 0;
};

// OpenVINO with the Python backend's compile settings (PERFORMANCE_HINT=LATENCY,
// INFERENCE_PRECISION_HINT=f32 for fp32/int8 bundles, then the manifest's runtime_options, then
// INFERENCE_NUM_THREADS). The manifest must have been verified.
std::unique_ptr<Backend> open_openvino(const Manifest& manifest, const BackendOptions& options);

}  // namespace edgeiqa
