// manifest.json: reading and checking it, and verifying the bundle's files, as edge_iqa.runtime
// does before any network is loaded (bundle.read_manifest, backends.check_runtime,
// bundle.verify_files, scorer._plan). Every failure is Error(EDGEIQA_ERR_BUNDLE) with Python's advice.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "preprocess.hpp"

namespace edgeiqa {

// Manifest schema_version this library reads (edge_iqa.runtime.manifest.SCHEMA_VERSION). 2: the image
// input may take uint8 pixels (io.inputs[0].dtype "uint8", shape [batch, H, W, 3]); 1 still loads.
constexpr int kSchemaVersion = 2;
// Runtimes edge-iqa knows (edge_iqa.runtime.backends.BACKENDS) and the one compiled in here.
constexpr const char* kKnownRuntimes[] = {"onnxruntime", "openvino", "tensorrt"};
constexpr const char* kNativeRuntime = "openvino";
// Python's DEFAULT_MAX_BATCH, MAX_BUFFER_BYTES and MAX_THREADS.
constexpr int kDefaultMaxBatch = 8;
constexpr int64_t kMaxBufferBytes = int64_t{2} << 30;
constexpr int kMaxThreads = 1024;

struct FileRecord {
  std::string name;
  std::string sha256;
  int64_t size = -1;  // -1: not recorded
};

// One runtime_options entry: a string, a number (kept as its JSON text) or a boolean.
struct RuntimeOption {
  std::string name;
  std::string text;
  bool is_bool = false;
  bool flag = false;
};

struct Manifest {
  std::string bundle_dir;
  int schema_version = 0;
  std::string runtime;
  std::string precision;
  std::string model_name;  // model.name, "" when absent
  std::string model_file;
  std::string weights_file;
  std::string input_name;
  InputEncoding input_encoding = InputEncoding::FloatRows;  // io.inputs[0].dtype
  std::string output_name;  // "" when the manifest does not say: the first output
  PreprocessSpec spec;
  int fixed_batch = 0;  // > 0: static batch
  int max_batch = kDefaultMaxBatch;
  int target_threads = 0;  // target.threads when positive
  double scale = 1.0;
  double offset = 0.0;
  // runtime_options: OpenVINO compile_model properties the exporter measured with.
  std::vector<RuntimeOption> runtime_options;
  std::vector<FileRecord> files;
  nlohmann::json raw;  // the parsed manifest.json
};

// All of the checks below, in Python's order: read, runtime, files, plan.
Manifest load_manifest(const std::string& bundle_dir);

// Reads and checks manifest.json (bundle.read_manifest: folder, size, JSON, required keys, schema
// version, model file listed) and the runtime name (backends.check_runtime).
Manifest read_manifest(const std::string& bundle_dir);

// Every listed file is inside the bundle, exists, and has its recorded size and sha256.
void verify_files(const Manifest& manifest);

// The rest of the manifest (scorer._plan): io, preprocessing, input shape, batch, threads,
// output_transform, runtime_options, and whether this library can serve it.
void plan(Manifest& manifest);

// The path of a listed file (safe_member: absolute names, "..", "\\" and "~" are refused, and the
// resolved path must stay inside the bundle).
std::string member_path(const std::string& bundle_dir, const std::string& name);

}  // namespace edgeiqa
