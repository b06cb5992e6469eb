#include "scorer.hpp"

#include <algorithm>
#include <cmath>

#include "compile_cache.hpp"
#include "error.hpp"

namespace edgeiqa {
namespace {

// numpy's pairwise_sum (umath loops): blocks of 8 accumulators below 128 values, halves above.
double pairwise_sum(const double* a, size_t n) {
  if (n < 8) {
    double s = 0.0;
    for (size_t i = 0; i < n; ++i) s += a[i];
    return s;
  }
  if (n <= 128) {
    double r[8];
    for (int j = 0; j < 8; ++j) r[j] = a[j];
    size_t i = 8;
    for (; i < n - (n % 8); i += 8)
      for (int j = 0; j < 8; ++j) r[j] += a[i + j];
    double s = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (; i < n; ++i) s += a[i];
    return s;
  }
  size_t half = n / 2;
  half -= half % 8;
  return pairwise_sum(a, half) + pairwise_sum(a + half, n - half);
}

BackendOptions with_target_threads(BackendOptions options, const Manifest& m) {
  if (options.threads == 0) options.threads = m.target_threads;
  return options;
}

BackendOptions with_cache_dir(BackendOptions options, const std::string& cache_dir) {
  options.cache_dir = cache_dir;
  return options;
}

}  // namespace

double numpy_mean(const double* values, size_t n) {
  return (0.0 + pairwise_sum(values, n)) / static_cast<double>(n);
}

Scorer::Scorer(const std::string& bundle_dir, BackendOptions options)
    : manifest_(load_manifest(bundle_dir)),
      cache_root_(options.cache_dir),
      cache_limit_(cache_limit_bytes()),  // a bad $EDGE_IQA_CACHE_MAX_MB fails before the compile
      cache_dir_(cache_root_.empty() ? "" : network_cache_folder(cache_root_, network_cache_key(manifest_))),
      encoder_(manifest_.spec, manifest_.input_encoding),
      backend_(open_openvino(manifest_, with_cache_dir(with_target_threads(std::move(options), manifest_), cache_dir_))) {
  if (!cache_dir_.empty()) evict_cache(cache_root_, cache_dir_, cache_limit_);
}

void Scorer::run(uint8_t* batch, int rows, std::vector<double>& raw) {
  const size_t row_bytes = manifest_.spec.row_bytes(manifest_.input_encoding);
  int fed = rows;
  if (manifest_.fixed_batch) {  // a static-batch network always gets fixed_batch rows; padding is dropped
    std::fill(batch + rows * row_bytes, batch + manifest_.fixed_batch * row_bytes, uint8_t{0});  // pixels 0, floats 0.0f
    fed = manifest_.fixed_batch;
  }
  std::vector<float> out(fed);
  backend_->run(batch, fed, out.data());
  for (int i = 0; i < rows; ++i) {
    if (!std::isfinite(out[i]))
      // Finite inputs in, NaN/inf out: an overflowing (e.g. FP16) or broken network, never a score.
      bundle_error("the network returned a non-finite score for a valid image; the bundle is numerically broken "
                   "(FP16 overflow?): re-export it at fp32 or report the model");
    raw.push_back(out[i]);
  }
}

void Scorer::score(const edgeiqa_frame* frames, size_t count, double* scores) {
  const PreprocessSpec& spec = manifest_.spec;
  const size_t row_bytes = spec.row_bytes(manifest_.input_encoding);
  const int crops = spec.num_crops();
  // Per call: thread-safe. Float storage, so that float rows are written to floats; pixel rows are
  // written as bytes, which may alias anything.
  std::vector<float> storage((manifest_.max_batch * row_bytes + sizeof(float) - 1) / sizeof(float));
  uint8_t* batch = reinterpret_cast<uint8_t*>(storage.data());
  std::vector<double> raw;
  raw.reserve(count * crops);
  int fill = 0;
  for (size_t i = 0; i < count; ++i) {
    const Geometry geometry = apply_geometry(spec, to_rgb(frames[i]));
    // A frame's crops are packed max_batch rows at a time and may straddle two runs.
    for (const CropBox& box : geometry.crops) {
      encoder_.encode(geometry.resized, box, batch + fill * row_bytes);
      if (++fill == manifest_.max_batch) {
        run(batch, fill, raw);
        fill = 0;
      }
    }
  }
  if (fill) run(batch, fill, raw);
  for (size_t i = 0; i < count; ++i)
    scores[i] = numpy_mean(raw.data() + i * crops, crops) * manifest_.scale + manifest_.offset;
}

}  // namespace edgeiqa
