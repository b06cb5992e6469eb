// A verified bundle ready to score frames (the native twin of edge_iqa.runtime.Scorer):
//   frame -> geometry (num_crops crops) -> the network's input rows (uint8 pixels or float32 rows)
//   -> backend, max_batch rows at a time -> mean over each frame's crops (float64) -> raw * scale + offset
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "backend.hpp"
#include "manifest.hpp"
#include "preprocess.hpp"

namespace edgeiqa {

class Scorer {
 public:
  // Verifies everything (load_manifest), then loads the network. options.threads: 0 = the target's.
  Scorer(const std::string& bundle_dir, BackendOptions options);

  const Manifest& manifest() const { return manifest_; }
  const InputEncoder& encoder() const { return encoder_; }
  // The network's own folder of the compiled-model cache ("" when none).
  const std::string& cache_dir() const { return cache_dir_; }

  // Thread-safe; each call keeps its own buffers. Frames must have passed check_frame.
  void score(const edgeiqa_frame* frames, size_t count, double* scores);

 private:
  // Run the first `rows` rows of `batch` (max_batch rows; padded to the static batch) and append
  // their raw scores.
  void run(uint8_t* batch, int rows, std::vector<double>& raw);

  Manifest manifest_;
  std::string cache_root_;  // the compiled-model cache's root ("" when none)
  std::uint64_t cache_limit_;
  std::string cache_dir_;  // this network's folder in it (compile_cache.hpp)
  InputEncoder encoder_;
  std::unique_ptr<Backend> backend_;
};

// numpy's float64 mean of n values as Scorer._score_rows takes it (add.reduce: the identity 0 plus
// numpy's pairwise sum, then / n), so that equal raw scores give bit-identical scores.
double numpy_mean(const double* values, size_t n);

}  // namespace edgeiqa
