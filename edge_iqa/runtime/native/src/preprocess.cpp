#include "preprocess.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <initializer_list>
#include <utility>
#include <nlohmann/json.hpp>

#include "error.hpp"

namespace edgeiqa {
namespace {

using nlohmann::json;

[[noreturn]] void invalid(const std::string& what) {
  bundle_error("the bundle's preprocessing spec is invalid (" + what + "); re-export the bundle or upgrade edge-iqa");
}

// Python's int(v) for a JSON number that holds an integer.
int as_int(const json& value, const std::string& key) {
  if (value.is_number_integer()) {
    const auto v = value.get<int64_t>();
    if (v < INT32_MIN || v > INT32_MAX) invalid(key + " " + value.dump() + " is out of range");
    return static_cast<int>(v);
  }
  if (value.is_number_float()) {
    const double v = value.get<double>();
    if (std::isfinite(v) && v == std::trunc(v) && std::fabs(v) < 2147483647.0) return static_cast<int>(v);
  }
  invalid(key + " must be an integer, got " + value.dump());
}

double as_number(const json& value, const std::string& key) {
  if (!value.is_number() || !std::isfinite(value.get<double>()))
    invalid(key + " must hold finite numbers, got " + value.dump());
  return value.get<double>();
}

template <size_t N>
std::array<double, N> numbers(const json& value, const std::string& key) {
  if (!value.is_array() || value.size() != N)
    invalid(key + " must be a list of " + std::to_string(N) + " numbers, got " + value.dump());
  std::array<double, N> out{};
  for (size_t i = 0; i < N; ++i) out[i] = as_number(value[i], key);
  return out;
}

std::array<int, 2> int_pair(const json& value, const std::string& key) {
  if (!value.is_array() || value.size() != 2) invalid(key + " must be a list of 2 integers, got " + value.dump());
  return {as_int(value[0], key), as_int(value[1], key)};
}

std::string as_string(const json& value, const std::string& key) {
  if (!value.is_string()) invalid(key + " must be a string, got " + value.dump());
  return value.get<std::string>();
}

// data[key], one of the names in `options` (PreprocessSpec's Literal types).
template <typename T>
T choice(const json& data, const char* key, const char* what,
         std::initializer_list<std::pair<const char*, T>> options) {
  const std::string name = as_string(data[key], key);
  for (const auto& [option, value] : options)
    if (name == option) return value;
  invalid("unknown " + std::string(what) + " '" + name + "'");
}

// numpy.linspace(0, span, count).round(): i * (span / (count - 1)) rounded half to even, the last
// exactly span.
std::vector<int> grid_starts(int span, int count) {
  if (count == 1) return {0};
  const double step = span / (count - 1.0);
  std::vector<int> starts;
  for (int i = 0; i < count - 1; ++i) starts.push_back(static_cast<int>(std::nearbyint(i * step)));
  starts.push_back(span);
  return starts;
}

}  // namespace

PreprocessSpec PreprocessSpec::from_json(const json& data) {
  if (!data.is_object()) invalid("expected a JSON object, got " + std::string(data.type_name()));
  PreprocessSpec spec;
  const int version = data.contains("version") ? as_int(data["version"], "version") : kPreprocessVersion;
  if (version > kPreprocessVersion)
    invalid("preprocessing spec version " + std::to_string(version) +
            " is newer than this edge-iqa understands (" + std::to_string(kPreprocessVersion) + "); upgrade edge-iqa");
  if (!data.contains("input_size")) invalid("input_size is missing");
  const auto size = int_pair(data["input_size"], "input_size");
  spec.input_height = size[0];
  spec.input_width = size[1];
  if (data.contains("resize"))
    spec.resize = choice<ResizePolicy>(data, "resize", "resize policy",
                                       {{"shorter_side", ResizePolicy::ShorterSide}, {"exact", ResizePolicy::Exact},
                                        {"none", ResizePolicy::None}});
  if (data.contains("resize_to") && !data["resize_to"].is_null()) spec.resize_to = as_int(data["resize_to"], "resize_to");
  if (data.contains("crop"))
    spec.crop = choice<CropPolicy>(data, "crop", "crop policy",
                                   {{"center", CropPolicy::Center}, {"grid", CropPolicy::Grid}, {"none", CropPolicy::None}});
  if (data.contains("grid")) {
    const auto grid = int_pair(data["grid"], "grid");
    spec.grid_rows = grid[0];
    spec.grid_cols = grid[1];
  }
  if (data.contains("mean")) spec.mean = numbers<3>(data["mean"], "mean");
  if (data.contains("std")) spec.std = numbers<3>(data["std"], "std");
  if (data.contains("normalize")) {
    if (!data["normalize"].is_boolean()) invalid("normalize must be true or false, got " + data["normalize"].dump());
    spec.normalize = data["normalize"].get<bool>();
  }
  if (data.contains("interpolation")) {
    if (data["interpolation"] == "nearest")
      bundle_error("the bundle resizes with interpolation 'nearest', which the native runtime does not implement "
                   "(it reproduces Pillow's bilinear, bicubic and lanczos); score it with the Python runtime or "
                   "re-export with a bilinear spec");
    spec.interpolation = choice<Filter>(data, "interpolation", "interpolation",
                                        {{"bilinear", Filter::Bilinear}, {"bicubic", Filter::Bicubic},
                                         {"lanczos", Filter::Lanczos}});
  }
  // PreprocessSpec.__post_init__ and the limits _dry_run would hit.
  if (spec.input_height <= 0 || spec.input_width <= 0) invalid("input_size must be positive, got " + data["input_size"].dump());
  if (spec.input_height > 16384 || spec.input_width > 16384) invalid("input_size " + data["input_size"].dump() + " is absurdly large");
  if (spec.resize_to < 0 || spec.resize_to > 16384) invalid("resize_to must be a positive size, got " + std::to_string(spec.resize_to));
  if (spec.crop == CropPolicy::Grid && (spec.grid_rows < 1 || spec.grid_cols < 1 || spec.grid_rows > 64 || spec.grid_cols > 64))
    invalid("grid must be between 1x1 and 64x64, got " + data["grid"].dump());
  for (double s : spec.std)
    if (!(s > 0) || !std::isfinite(static_cast<float>(s))) invalid("std must be positive");
  for (int c = 0; c < 3; ++c)
    if (!std::isfinite((0.0f - static_cast<float>(spec.mean[c])) / static_cast<float>(spec.std[c])) ||
        !std::isfinite((1.0f - static_cast<float>(spec.mean[c])) / static_cast<float>(spec.std[c])))
      bundle_error("the bundle's preprocessing spec gives non-finite or misshapen input (e.g. std 0); re-export the bundle");
  return spec;
}

Geometry apply_geometry(const PreprocessSpec& spec, const Rgb8Image& image) {
  const int h = image.height, w = image.width;
  int nh = h, nw = w;
  if (spec.resize == ResizePolicy::Exact) {
    nh = spec.input_height;
    nw = spec.input_width;
  } else if (spec.resize == ResizePolicy::ShorterSide) {
    const int target = spec.resize_to ? spec.resize_to : std::min(spec.input_height, spec.input_width);
    const double scale = static_cast<double>(target) / std::min(h, w);
    // Python's round(): ties to even (nearbyint in the default rounding mode), not std::round.
    nh = std::max(target, static_cast<int>(std::nearbyint(h * scale)));
    nw = std::max(target, static_cast<int>(std::nearbyint(w * scale)));
    // The crop must fit: a very elongated image is scaled up until both sides do.
    nh = std::max(nh, spec.input_height);
    nw = std::max(nw, spec.input_width);
  }
  if (static_cast<int64_t>(nh) * nw > 4 * kMaxPixels)
    image_error("the frame is " + std::to_string(w) + "x" + std::to_string(h) + ", which the bundle's resize policy "
                "would stretch to " + std::to_string(nw) + "x" + std::to_string(nh) + "; crop the frame to a sane aspect ratio");
  Geometry g;
  g.resized = (nh == h && nw == w) ? image : resize(image, nw, nh, spec.interpolation);
  const int ch = spec.input_height, cw = spec.input_width;
  if (spec.crop == CropPolicy::None) {
    if (nh != ch || nw != cw)
      image_error("crop='none' needs the resized image to be " + std::to_string(ch) + "x" + std::to_string(cw) + ", got " +
                  std::to_string(nh) + "x" + std::to_string(nw) + "; resize the frame to the bundle's input size");
    g.crops.push_back({0, 0});
    return g;
  }
  if (nh < ch || nw < cw)
    image_error("the frame " + std::to_string(nh) + "x" + std::to_string(nw) + " is smaller than the crop " +
                std::to_string(ch) + "x" + std::to_string(cw) + "; pass a larger frame");
  if (spec.crop == CropPolicy::Center) {
    g.crops.push_back({(nh - ch) / 2, (nw - cw) / 2});
    return g;
  }
  for (int r : grid_starts(nh - ch, spec.grid_rows))
    for (int c : grid_starts(nw - cw, spec.grid_cols)) g.crops.push_back({r, c});
  return g;
}

const char* dtype_name(InputEncoding encoding) {
  return encoding == InputEncoding::Pixels ? "uint8" : "float32";
}

InputEncoder::InputEncoder(const PreprocessSpec& spec, InputEncoding encoding)
    : height_(spec.input_height), width_(spec.input_width), encoding_(encoding) {
  for (int c = 0; c < 3; ++c) {
    const float mean = static_cast<float>(spec.mean[c]), std = static_cast<float>(spec.std[c]);
    for (int v = 0; v < 256; ++v) {
      // float32 arithmetic, as numpy: (uint8 -> float32) / float32(255), then (x - mean) / std.
      float x = static_cast<float>(v) / 255.0f;
      if (spec.normalize) x = (x - mean) / std;
      table_[c][v] = x;
    }
  }
}

void InputEncoder::encode(const Rgb8Image& resized, CropBox box, void* out) const {
  if (encoding_ == InputEncoding::FloatRows) return normalize(resized, box, static_cast<float*>(out));
  const size_t row = static_cast<size_t>(width_) * 3;
  for (int y = 0; y < height_; ++y)
    std::memcpy(static_cast<uint8_t*>(out) + y * row, resized.row(box.row + y) + static_cast<size_t>(box.col) * 3, row);
}

void InputEncoder::normalize(const Rgb8Image& resized, CropBox box, float* out) const {
  const size_t plane = static_cast<size_t>(height_) * width_;
  for (int y = 0; y < height_; ++y) {
    const uint8_t* src = resized.row(box.row + y) + static_cast<size_t>(box.col) * 3;
    float* r = out + static_cast<size_t>(y) * width_;
    float* g = r + plane;
    float* b = g + plane;
    for (int x = 0; x < width_; ++x) {
      r[x] = table_[0][src[x * 3]];
      g[x] = table_[1][src[x * 3 + 1]];
      b[x] = table_[2][src[x * 3 + 2]];
    }
  }
}

std::vector<float> preprocess(const PreprocessSpec& spec, const InputEncoder& encoder, const Rgb8Image& image) {
  const Geometry geometry = apply_geometry(spec, image);
  std::vector<float> rows(geometry.crops.size() * spec.row_floats());
  for (size_t i = 0; i < geometry.crops.size(); ++i)
    encoder.normalize(geometry.resized, geometry.crops[i], rows.data() + i * spec.row_floats());
  return rows;
}

}  // namespace edgeiqa
