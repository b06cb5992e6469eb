#include "manifest.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>

#include "error.hpp"
#include "sha256.hpp"

namespace edgeiqa {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr const char* kManifestName = "manifest.json";
// A manifest is a few KiB; a bigger file is not read into memory (bundle.MAX_MANIFEST_BYTES).
constexpr std::uintmax_t kMaxManifestBytes = 16u << 20;
constexpr const char* kRequiredKeys[] = {"schema_version", "runtime", "precision", "model_file", "io",
                                         "preprocess", "output_transform", "files"};

bool is_plain_int(const json& v) { return v.is_number_integer(); }  // JSON booleans are not numbers here

std::string quoted(const std::string& name) { return "'" + name + "'"; }

}  // namespace

std::string member_path(const std::string& bundle_dir, const std::string& name) {
  // PurePosixPath(name).parts: "a//b" and "./a" name the same file as "a/b" and "a".
  bool dotdot = false;
  std::stringstream parts(name);
  for (std::string part; std::getline(parts, part, '/');) dotdot |= part == "..";
  if (name.empty() || name[0] == '/' || dotdot || name.find('\\') != std::string::npos || name[0] == '~' ||
      name.find('\0') != std::string::npos)
    bundle_error("manifest names the file " + quoted(name) +
                 ", which is outside the bundle; the bundle is corrupt or malicious: re-export it");
  std::error_code ec;
  const fs::path root = fs::weakly_canonical(fs::path(bundle_dir), ec);
  const fs::path path = fs::weakly_canonical(fs::path(bundle_dir) / name, ec);
  // Strictly below the bundle folder, also after following symbolic links.
  const auto mismatch = std::mismatch(root.begin(), root.end(), path.begin(), path.end());
  if (ec || mismatch.first != root.end() || mismatch.second == path.end())
    bundle_error("manifest file " + quoted(name) + " resolves outside the bundle; re-export it");
  return path.string();
}

Manifest read_manifest(const std::string& bundle_dir) {
  std::error_code ec;
  const fs::path dir(bundle_dir);
  const fs::path path = dir / kManifestName;
  if (!fs::is_directory(dir, ec))
    bundle_error(bundle_dir + ": not a bundle folder (does not exist); run `edge-iqa export` first");
  if (!fs::is_regular_file(path, ec))
    bundle_error(bundle_dir + ": has no " + kManifestName + "; it is not a complete bundle, re-export it");
  const auto size = fs::file_size(path, ec);
  if (!ec && size > kMaxManifestBytes)
    bundle_error(path.string() + ": " + std::to_string(size) + " bytes, far larger than any manifest (limit " +
                 std::to_string(kMaxManifestBytes) + "); the bundle is corrupt, re-export it");
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  if (!in.good() && !in.eof())
    bundle_error(path.string() + ": cannot be read; check the bundle's file permissions for this user");
  Manifest m;
  m.bundle_dir = bundle_dir;
  m.raw = json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
  if (m.raw.is_discarded())
    bundle_error(path.string() + ": not valid JSON; the bundle is corrupt, re-export it");
  if (!m.raw.is_object()) bundle_error(path.string() + ": must hold a JSON object; re-export the bundle");
  std::string missing;
  for (const char* key : kRequiredKeys)
    if (!m.raw.contains(key)) missing += (missing.empty() ? "" : ", ") + std::string(key);
  if (!missing.empty())
    bundle_error(path.string() + ": lacks " + missing + "; re-export the bundle with this edge-iqa");
  const json& version = m.raw["schema_version"];
  if (!is_plain_int(version) || version.get<int64_t>() < 1)
    bundle_error(path.string() + ": invalid schema_version " + version.dump() + "; re-export the bundle");
  if (version.get<int64_t>() > kSchemaVersion)
    bundle_error(path.string() + ": schema version " + version.dump() + " comes from a newer edge-iqa (this one reads <= " +
                 std::to_string(kSchemaVersion) + "); upgrade edge-iqa or export with this version");
  m.schema_version = version.get<int>();
  const json& files = m.raw["files"];
  const json& model_file = m.raw["model_file"];
  if (!files.is_object() || !model_file.is_string() || !files.contains(model_file.get<std::string>()))
    bundle_error(path.string() + ": the model file is not listed with a checksum; re-export the bundle");
  m.model_file = model_file.get<std::string>();
  const json& runtime = m.raw["runtime"];
  const bool known = runtime.is_string() && std::any_of(std::begin(kKnownRuntimes), std::end(kKnownRuntimes),
                                                       [&](const char* r) { return runtime.get<std::string>() == r; });
  if (!known)
    bundle_error("the bundle was made for runtime " + runtime.dump() +
                 ", which this edge-iqa does not know (known: onnxruntime, openvino, tensorrt); upgrade edge-iqa or "
                 "export for one of these");
  m.runtime = runtime.get<std::string>();
  for (const auto& [name, record] : files.items()) {
    FileRecord file;
    file.name = name;
    if (record.is_object() && record.contains("sha256") && record["sha256"].is_string())
      file.sha256 = record["sha256"].get<std::string>();
    if (record.is_object() && record.contains("size")) {
      if (!is_plain_int(record["size"]))
        bundle_error(bundle_dir + ": the recorded size of " + name + " is not an integer; re-export the bundle");
      file.size = record["size"].get<int64_t>();
    }
    m.files.push_back(file);
  }
  return m;
}

void verify_files(const Manifest& m) {
  for (const FileRecord& file : m.files) {
    const std::string path = member_path(m.bundle_dir, file.name);
    std::error_code ec;
    if (!fs::is_regular_file(path, ec))
      bundle_error(m.bundle_dir + ": " + file.name + " is missing; the bundle is incomplete, re-export it");
    if (file.sha256.empty()) bundle_error(m.bundle_dir + ": no checksum for " + file.name + "; re-export the bundle");
    const auto actual = fs::file_size(path, ec);
    if (file.size >= 0 && (ec || actual != static_cast<std::uintmax_t>(file.size)))
      bundle_error(m.bundle_dir + ": " + file.name + " has " + std::to_string(actual) + " bytes, the manifest says " +
                   std::to_string(file.size) + ": truncated or replaced; re-export the bundle");
    if (sha256_file(path, m.bundle_dir + ": " + file.name) != file.sha256)
      bundle_error(m.bundle_dir + ": checksum mismatch for " + file.name +
                   ": the file was modified or corrupted; re-export the bundle");
  }
}

namespace {

// One io.inputs record (backends.base._checked_record): {name, shape [batch, 3, H, W]} of float32
// rows, or {name, shape [batch, H, W, 3], dtype "uint8"} of pixels; returns its encoding.
InputEncoding checked_record(const json& record, size_t index) {
  const json dtype = record.value("dtype", json("float32"));
  const bool pixels = dtype == dtype_name(InputEncoding::Pixels);
  const json* shape = record.contains("shape") ? &record["shape"] : nullptr;
  const bool shape_ok = shape && shape->is_array() && shape->size() == 4 &&
                        std::all_of(shape->begin(), shape->end(), is_plain_int) &&
                        (*shape)[pixels ? 3 : 1].get<int64_t>() == 3;
  if (!record.contains("name") || !record["name"].is_string() || !shape_ok)
    bundle_error("manifest io.inputs[" + std::to_string(index) + "] must be {'name': str, 'shape': " +
                 (pixels ? "[batch, H, W, 3] (uint8 pixels)" : "[batch, 3, H, W]") + "}, got " + record.dump() +
                 "; re-export the bundle");
  if (!pixels && dtype != dtype_name(InputEncoding::FloatRows))
    bundle_error("the bundle's input dtype is " + dtype.dump() +
                 "; this runtime feeds float32 rows or uint8 pixels: re-export the bundle, or upgrade edge-iqa");
  return pixels ? InputEncoding::Pixels : InputEncoding::FloatRows;
}

// The network's image input (backends.base.input_records), refusing what this library cannot feed.
void read_input(Manifest& m) {
  const json& io = m.raw["io"];
  const json* inputs = io.is_object() && io.contains("inputs") ? &io["inputs"] : nullptr;
  if (!inputs || !inputs->is_array() || inputs->empty() || inputs->size() > 2 ||
      !std::all_of(inputs->begin(), inputs->end(), [](const json& r) { return r.is_object(); }))
    bundle_error("manifest io.inputs must list the network's input: the preprocessed image, or the image and its "
                 "depth map ('image', 'depth'); re-export the bundle");
  for (size_t i = 0; i < inputs->size(); ++i) {
    const InputEncoding encoding = checked_record((*inputs)[i], i);
    if (i == 0) m.input_encoding = encoding;
  }
  if (inputs->size() == 2)
    fail(EDGEIQA_ERR_BACKEND_UNAVAILABLE,
         "the bundle's network takes an image and its depth map (DGIQA); the native runtime scores single-input "
         "bundles only: score this bundle with the Python runtime (edge_iqa.runtime, with a depth source)");
  const json& record = (*inputs)[0];
  m.input_name = record["name"].get<std::string>();
  const auto& shape = record["shape"];
  // (H, W): axes 1, 2 of NHWC pixels, 2, 3 of NCHW rows.
  const size_t first = m.input_encoding == InputEncoding::Pixels ? 1 : 2;
  for (int axis = 0; axis < 2; ++axis) {
    const int64_t declared = shape[first + axis].get<int64_t>();
    const int produced = axis == 0 ? m.spec.input_height : m.spec.input_width;
    if (declared > 0 && declared != produced)
      bundle_error("the network's input is " + shape[first].dump() + "x" + shape[first + 1].dump() +
                   " but the preprocessing produces " + std::to_string(m.spec.input_height) + "x" +
                   std::to_string(m.spec.input_width) + "; the bundle is inconsistent, re-export it");
  }
  const int64_t batch = shape[0].get<int64_t>();
  if (batch > kMaxThreads * 64) bundle_error("the network's static batch " + shape[0].dump() + " is absurd; re-export it");
  m.fixed_batch = batch > 0 ? static_cast<int>(batch) : 0;
  if (io.contains("output") && io["output"].is_string()) m.output_name = io["output"].get<std::string>();
}

const json& target_of(const json& raw) {
  static const json empty = json::object();
  return raw.contains("target") && raw["target"].is_object() ? raw["target"] : empty;
}

void read_batch(Manifest& m) {
  const json& io = m.raw["io"];
  // Python: io.get("max_batch") or target.get("max_batch"): a falsy value falls through.
  auto falsy = [](const json& v) { return v.is_null() || (v.is_number() && v.get<double>() == 0) || v == false; };
  json declared = io.contains("max_batch") ? io["max_batch"] : json();
  if (falsy(declared) && target_of(m.raw).contains("max_batch")) declared = target_of(m.raw)["max_batch"];
  int limit = 0;
  if (!falsy(declared)) {
    if (!is_plain_int(declared) || declared.get<int64_t>() < 1)
      bundle_error("the bundle's max_batch " + declared.dump() + " is not a positive integer; re-export it");
    limit = static_cast<int>(std::min<int64_t>(declared.get<int64_t>(), INT32_MAX));
  }
  m.max_batch = m.fixed_batch ? m.fixed_batch : (limit ? limit : kDefaultMaxBatch);
  const double bytes = static_cast<double>(m.max_batch) * m.spec.row_bytes(m.input_encoding);
  if (bytes > static_cast<double>(kMaxBufferBytes))
    bundle_error("the bundle needs " + std::to_string(bytes / (1 << 30)) + " GiB of input buffers (" +
                 std::to_string(m.max_batch) + " rows of 3x" + std::to_string(m.spec.input_height) + "x" +
                 std::to_string(m.spec.input_width) + " " + dtype_name(m.input_encoding) +
                 "), above the runtime's 2 GiB limit; re-export with a smaller batch or input size");
}

void read_transform(Manifest& m) {
  const json& t = m.raw["output_transform"];
  auto number = [&](const char* key, double fallback) {
    if (!t.is_object())
      bundle_error("the bundle's output_transform " + t.dump() + " must be {'scale': number, 'offset': number}; re-export it");
    if (!t.contains(key)) return fallback;
    if (!t[key].is_number())
      bundle_error("the bundle's output_transform " + t.dump() + " must be {'scale': number, 'offset': number}; re-export it");
    return t[key].get<double>();
  };
  m.scale = number("scale", 1.0);
  m.offset = number("offset", 0.0);
  if (!std::isfinite(m.scale) || !std::isfinite(m.offset))
    bundle_error("the bundle's output_transform " + t.dump() + " is not finite; re-export it");
}

void read_options(Manifest& m) {
  const json& target = target_of(m.raw);
  if (target.contains("threads") && is_plain_int(target["threads"])) {
    const int64_t threads = target["threads"].get<int64_t>();
    if (threads > kMaxThreads)
      bundle_error("the bundle's target asks for " + std::to_string(threads) + " threads (at most " +
                   std::to_string(kMaxThreads) + "); pass options.threads or re-export with a sane target profile");
    m.target_threads = threads > 0 ? static_cast<int>(threads) : 0;
  }
  // Written by the exporter: OpenVINO property name -> str/int/float/bool (others are ignored, as in Python).
  if (m.raw.contains("runtime_options") && m.raw["runtime_options"].is_object())
    for (const auto& [name, value] : m.raw["runtime_options"].items()) {
      RuntimeOption option{name, "", value.is_boolean(), value.is_boolean() && value.get<bool>()};
      if (value.is_string()) option.text = value.get<std::string>();
      else if (value.is_number()) option.text = value.dump();
      else if (!value.is_boolean()) continue;
      m.runtime_options.push_back(option);
    }
  const json& model = m.raw.contains("model") ? m.raw["model"] : json();
  if (model.is_object() && model.contains("name") && model["name"].is_string()) m.model_name = model["name"].get<std::string>();
  const json& precision = m.raw["precision"];
  m.precision = precision.is_string() ? precision.get<std::string>() : precision.dump();
  m.weights_file = m.raw.contains("weights_file") && m.raw["weights_file"].is_string() &&
                           !m.raw["weights_file"].get<std::string>().empty()
                       ? m.raw["weights_file"].get<std::string>()
                       : fs::path(m.model_file).replace_extension(".bin").generic_string();
}

}  // namespace

void plan(Manifest& m) {
  m.spec = PreprocessSpec::from_json(m.raw["preprocess"]);
  read_input(m);
  read_batch(m);
  read_transform(m);
  read_options(m);
  if (m.runtime != kNativeRuntime)
    fail(EDGEIQA_ERR_BACKEND_UNAVAILABLE,
         "this bundle runs on " + m.runtime + ", but the native runtime is built with OpenVINO only; export an OpenVINO "
         "bundle (`edge-iqa export --target cpu`) or score this one with the Python runtime (edge_iqa.runtime)");
}

Manifest load_manifest(const std::string& bundle_dir) {
  Manifest m = read_manifest(bundle_dir);
  verify_files(m);
  plan(m);
  return m;
}

}  // namespace edgeiqa
