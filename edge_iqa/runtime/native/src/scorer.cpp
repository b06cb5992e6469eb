#include "scorer.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

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

}  // namespace

double numpy_mean(const double* values, size_t n) {
  return (0.0 + pairwise_sum(values, n)) / static_cast<double>(n);
}

Scorer::Scorer(const std::string& bundle_dir, BackendOptions options)
    : manifest_(load_manifest(bundle_dir)),
      cache_dir_(options.cache_dir),
      encoder_(manifest_.spec),
      backend_(open_openvino(manifest_, with_target_threads(std::move(options), manifest_))) {}

void Scorer::run(std::vector<float>& buffer, int rows, std::vector<double>& raw) {
  const size_t row_floats = manifest_.spec.row_floats();
  int fed = rows;
  if (manifest_.fixed_batch) {  // a static-batch network always gets fixed_batch rows; padding is dropped
    std::fill(buffer.begin() + static_cast<std::ptrdiff_t>(rows * row_floats), buffer.end(), 0.0f);
    fed = manifest_.fixed_batch;
  }
  std::vector<float> out(fed);
  backend_->run(buffer.data(), fed, out.data());
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
  const size_t row_floats = spec.row_floats();
  const int crops = spec.num_crops();
  // Per call: thread-safe. Crops are packed max_batch rows at a time and may straddle two runs.
  std::vector<float> buffer(static_cast<size_t>(manifest_.max_batch) * row_floats);
  std::vector<double> raw;
  raw.reserve(count * crops);
  int fill = 0;
  for (size_t i = 0; i < count; ++i) {
    const std::vector<float> rows = preprocess(spec, encoder_, to_rgb(frames[i]));
    for (int start = 0; start < crops;) {
      const int take = std::min(crops - start, manifest_.max_batch - fill);
      std::memcpy(buffer.data() + fill * row_floats, rows.data() + start * row_floats, take * row_floats * sizeof(float));
      fill += take;
      start += take;
      if (fill == manifest_.max_batch) {
        run(buffer, fill, raw);
        fill = 0;
      }
    }
  }
  if (fill) run(buffer, fill, raw);
  for (size_t i = 0; i < count; ++i)
    scores[i] = numpy_mean(raw.data() + i * crops, crops) * manifest_.scale + manifest_.offset;
}

}  // namespace edgeiqa
