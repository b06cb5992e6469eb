// The C boundary: every entry point catches everything, stores the message for
// edgeiqa_last_error() (per thread) and returns a status code.
#include <cstring>
#include <new>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "edgeiqa.h"
#include "error.hpp"
#include "image.hpp"
#include "scorer.hpp"

struct edgeiqa_scorer {
  explicit edgeiqa_scorer(const std::string& dir, edgeiqa::BackendOptions options) : scorer(dir, std::move(options)) {}
  edgeiqa::Scorer scorer;
};

namespace {

thread_local std::string last_error;

template <typename Body>
edgeiqa_status guarded(Body&& body) noexcept {
  try {
    body();
    return EDGEIQA_OK;
  } catch (const edgeiqa::Error& error) {
    try { last_error = error.what(); } catch (...) {}
    return error.status();
  } catch (const std::bad_alloc&) {
    try { last_error = "out of memory; score smaller frames or free memory"; } catch (...) {}
    return EDGEIQA_ERR_INTERNAL;
  } catch (const std::exception& exc) {
    try { last_error = std::string("unexpected error inside edge-iqa (please report it): ") + exc.what(); } catch (...) {}
    return EDGEIQA_ERR_INTERNAL;
  } catch (...) {
    try { last_error = "unexpected error inside edge-iqa (please report it)"; } catch (...) {}
    return EDGEIQA_ERR_INTERNAL;
  }
}

void need(const void* pointer, const char* what) {
  if (pointer == nullptr) edgeiqa::fail(EDGEIQA_ERR_ARGUMENT, std::string(what) + " is NULL");
}

void copy_rows(const std::vector<float>& rows, float* tensor, size_t capacity, size_t* written) {
  if (written) *written = rows.size();
  if (capacity < rows.size())
    edgeiqa::fail(EDGEIQA_ERR_BUFFER_TOO_SMALL, "the tensor buffer holds " + std::to_string(capacity) +
                                                    " floats, the frame needs " + std::to_string(rows.size()) +
                                                    " (num_crops x 3 x H x W); pass a larger buffer");
  need(tensor, "tensor");
  std::memcpy(tensor, rows.data(), rows.size() * sizeof(float));
}

}  // namespace

extern "C" {

const char* edgeiqa_version(void) { return "0.1.0"; }

const char* edgeiqa_last_error(void) { return last_error.c_str(); }

void edgeiqa_options_init(edgeiqa_options* options) {
  if (options == nullptr) return;
  std::memset(options, 0, sizeof(*options));
  options->struct_size = sizeof(edgeiqa_options);
}

edgeiqa_status edgeiqa_open(const char* bundle_dir, const edgeiqa_options* options, edgeiqa_scorer** scorer) {
  if (scorer != nullptr) *scorer = nullptr;
  return guarded([&] {
    need(scorer, "the scorer output pointer");
    need(bundle_dir, "bundle_dir");
    if (*bundle_dir == '\0') edgeiqa::fail(EDGEIQA_ERR_ARGUMENT, "bundle_dir is empty; pass the folder `edge-iqa export` wrote");
    edgeiqa::BackendOptions backend;
    const bool default_cache = options == nullptr || options->cache_dir == nullptr;
    if (options != nullptr) {
      if (options->struct_size != sizeof(edgeiqa_options))
        edgeiqa::fail(EDGEIQA_ERR_ARGUMENT, "options were not initialised with edgeiqa_options_init (or come from "
                                            "another version of edgeiqa.h); call edgeiqa_options_init first");
      if (options->threads < 0 || options->threads > edgeiqa::kMaxThreads)
        edgeiqa::fail(EDGEIQA_ERR_ARGUMENT, "options.threads must be in 0..1024 (0: the bundle's default), got " +
                                                std::to_string(options->threads));
      backend.threads = options->threads;
      if (options->cache_dir) backend.cache_dir = options->cache_dir;
      if (options->device && *options->device) backend.device = options->device;
    }
    if (default_cache) backend.cache_dir = edgeiqa::default_cache_dir();
    *scorer = new edgeiqa_scorer(bundle_dir, backend);
  });
}

void edgeiqa_close(edgeiqa_scorer* scorer) {
  try {
    delete scorer;
  } catch (...) {  // destructors of the backend must not take the caller down
  }
}

edgeiqa_status edgeiqa_get_info(const edgeiqa_scorer* scorer, edgeiqa_info* info) {
  return guarded([&] {
    need(scorer, "scorer");
    need(info, "info");
    const edgeiqa::Manifest& m = scorer->scorer.manifest();
    info->model = m.model_name.c_str();
    info->runtime = m.runtime.c_str();
    info->precision = m.precision.c_str();
    info->input_height = m.spec.input_height;
    info->input_width = m.spec.input_width;
    info->num_crops = m.spec.num_crops();
    info->max_batch = m.max_batch;
    info->fixed_batch = m.fixed_batch;
    info->cache_dir = scorer->scorer.cache_dir().c_str();
  });
}

const char* edgeiqa_model_name(const edgeiqa_scorer* scorer) {
  return scorer ? scorer->scorer.manifest().model_name.c_str() : nullptr;
}

const char* edgeiqa_precision(const edgeiqa_scorer* scorer) {
  return scorer ? scorer->scorer.manifest().precision.c_str() : nullptr;
}

const char* edgeiqa_input_dtype(const edgeiqa_scorer* scorer) {
  return scorer ? edgeiqa::dtype_name(scorer->scorer.manifest().input_encoding) : nullptr;
}

edgeiqa_status edgeiqa_score(edgeiqa_scorer* scorer, const edgeiqa_frame* frame, double* score) {
  return guarded([&] {
    need(scorer, "scorer");
    need(score, "score");
    edgeiqa::check_frame(frame, "frame");
    scorer->scorer.score(frame, 1, score);
  });
}

edgeiqa_status edgeiqa_score_batch(edgeiqa_scorer* scorer, const edgeiqa_frame* frames, size_t count, double* scores) {
  return guarded([&] {
    need(scorer, "scorer");
    if (count == 0) return;
    need(frames, "frames");
    need(scores, "scores");
    for (size_t i = 0; i < count; ++i) edgeiqa::check_frame(&frames[i], ("frame " + std::to_string(i)).c_str());
    std::vector<double> out(count);  // nothing is written unless every frame is scored
    scorer->scorer.score(frames, count, out.data());
    std::memcpy(scores, out.data(), count * sizeof(double));
  });
}

edgeiqa_status edgeiqa_preprocess(const edgeiqa_scorer* scorer, const edgeiqa_frame* frame, float* tensor,
                                  size_t capacity, size_t* written) {
  return guarded([&] {
    need(scorer, "scorer");
    edgeiqa::check_frame(frame, "frame");
    const edgeiqa::Scorer& s = scorer->scorer;
    copy_rows(edgeiqa::preprocess(s.manifest().spec, s.encoder(), edgeiqa::to_rgb(*frame)), tensor, capacity, written);
  });
}

edgeiqa_status edgeiqa_preprocess_spec(const char* preprocess_json, const edgeiqa_frame* frame, float* tensor,
                                       size_t capacity, size_t* written) {
  return guarded([&] {
    need(preprocess_json, "preprocess_json");
    const nlohmann::json data = nlohmann::json::parse(preprocess_json, nullptr, /*allow_exceptions=*/false);
    if (data.is_discarded()) edgeiqa::fail(EDGEIQA_ERR_ARGUMENT, "preprocess_json is not valid JSON");
    const edgeiqa::PreprocessSpec spec = edgeiqa::PreprocessSpec::from_json(data);
    edgeiqa::check_frame(frame, "frame");
    const edgeiqa::InputEncoder encoder(spec, edgeiqa::InputEncoding::FloatRows);
    copy_rows(edgeiqa::preprocess(spec, encoder, edgeiqa::to_rgb(*frame)), tensor, capacity, written);
  });
}

}  // extern "C"
