#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <openvino/openvino.hpp>
#include <vector>

#include "backend.hpp"
#include "error.hpp"

namespace edgeiqa {
namespace {

// The first line of a library message, bounded (edge_iqa.errors.first_line).
std::string first_line(const std::exception& exc) {
  std::string text = exc.what();
  const auto start = text.find_first_not_of(" \t\r\n");
  text = start == std::string::npos ? std::string("error") : text.substr(start);
  return text.substr(0, std::min(text.find('\n'), size_t{300}));
}

// backends/openvino.py default_config: ours < the bundle's runtime_options < an explicit thread count.
ov::AnyMap compile_config(const Manifest& m, int threads) {
  ov::AnyMap config{{"PERFORMANCE_HINT", std::string("LATENCY")}};
  if (m.precision == "fp32" || m.precision == "int8") config["INFERENCE_PRECISION_HINT"] = std::string("f32");
  for (const RuntimeOption& option : m.runtime_options) {
    if (option.is_bool) config[option.name] = option.flag;
    else config[option.name] = option.text;  // OpenVINO parses numbers from their text
  }
  if (threads > 0) config[ov::inference_num_threads.name()] = threads;
  return config;
}

class OpenVINOBackend final : public Backend {
 public:
  OpenVINOBackend(ov::CompiledModel compiled, ov::Output<const ov::Node> input, ov::Output<const ov::Node> output,
                  const Manifest& m)
      : compiled_(std::move(compiled)), input_(std::move(input)), output_(std::move(output)),
        height_(m.spec.input_height), width_(m.spec.input_width) {}

  void run(const float* input, int rows, float* out) override {
    ov::InferRequest request = borrow();
    try {
      // Wraps the caller's buffer: no copy. OpenVINO only reads it.
      ov::Tensor tensor(ov::element::f32, ov::Shape{static_cast<size_t>(rows), 3, static_cast<size_t>(height_),
                                                    static_cast<size_t>(width_)},
                        const_cast<float*>(input));
      request.set_tensor(input_, tensor);
      request.infer();
      const ov::Tensor result = request.get_tensor(output_);
      if (result.get_size() != static_cast<size_t>(rows))
        bundle_error("the network returned " + std::to_string(result.get_size()) + " values for a batch of " +
                     std::to_string(rows) + "; a bundle's output must be one score per row (batch,), re-export it");
      if (result.get_element_type() == ov::element::f32) {
        std::copy_n(result.data<const float>(), rows, out);
      } else if (result.get_element_type() == ov::element::f16) {
        const ov::float16* values = result.data<const ov::float16>();
        for (int i = 0; i < rows; ++i) out[i] = static_cast<float>(values[i]);
      } else {
        bundle_error("the network's output is " + result.get_element_type().get_type_name() +
                     ", not a float score; re-export the bundle");
      }
    } catch (const Error&) {
      give_back(std::move(request));
      throw;
    } catch (const std::exception& exc) {
      give_back(std::move(request));
      bundle_error("OpenVINO failed to run the bundle's network on a valid input (" + first_line(exc) +
                   "); the bundle is inconsistent: re-export it");
    }
    give_back(std::move(request));
  }

 private:
  // An InferRequest may not be shared: each concurrent run borrows its own from a pool, so N
  // concurrent callers use at most N requests.
  ov::InferRequest borrow() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!idle_.empty()) {
        ov::InferRequest request = std::move(idle_.back());
        idle_.pop_back();
        return request;
      }
    }
    return compiled_.create_infer_request();
  }

  void give_back(ov::InferRequest request) {
    std::lock_guard<std::mutex> lock(mutex_);
    idle_.push_back(std::move(request));
  }

  ov::CompiledModel compiled_;
  ov::Output<const ov::Node> input_;
  ov::Output<const ov::Node> output_;
  int height_, width_;
  std::mutex mutex_;
  std::vector<ov::InferRequest> idle_;
};

bool has_name(const ov::Output<const ov::Node>& port, const std::string& name) {
  const auto names = port.get_names();
  return names.count(name) > 0;
}

// model.xml -> model.bin: where OpenVINO looks for the weights of an IR given by path.
std::string fs_default_weights(const std::string& xml) {
  const auto dot = xml.find_last_of('.');
  return (dot == std::string::npos ? xml : xml.substr(0, dot)) + ".bin";
}

}  // namespace

std::string default_cache_dir() {
  std::string root;
  if (const char* given = std::getenv("EDGE_IQA_CACHE_DIR")) {
    root = given;
  } else {
    const char* xdg = std::getenv("XDG_CACHE_HOME");
    const char* home = std::getenv("HOME");
    if (xdg && *xdg) root = std::string(xdg) + "/edge-iqa";
    else if (home && *home) root = std::string(home) + "/.cache/edge-iqa";
  }
  if (root.empty()) return "";
  const std::filesystem::path folder = std::filesystem::path(root) / "openvino";
  std::error_code ec;
  std::filesystem::create_directories(folder, ec);
  if (ec || access(folder.c_str(), W_OK | X_OK) != 0) return "";
  return folder.string();
}

std::unique_ptr<Backend> open_openvino(const Manifest& m, const BackendOptions& options) {
  const std::string xml = member_path(m.bundle_dir, m.model_file);
  const bool listed = std::any_of(m.files.begin(), m.files.end(), [&](const FileRecord& f) { return f.name == m.weights_file; });
  if (!listed)
    bundle_error(m.bundle_dir + ": the network needs " + m.weights_file +
                 ", which the manifest does not list with a checksum; re-export the bundle");
  const std::string weights = member_path(m.bundle_dir, m.weights_file);
  const std::string version = ov::get_openvino_version().buildNumber;
  ov::CompiledModel compiled;
  try {
    ov::Core core;
    if (!options.cache_dir.empty()) core.set_property(ov::cache_dir(options.cache_dir));
    // With a compiled-model cache, compiling from the file lets a warm start skip reading the IR:
    // OpenVINO finds the blob by the files' hash. That needs the weights beside the IR under the
    // default name; otherwise (and without a cache) the model is read first, as the Python backend does.
    const bool from_file = !options.cache_dir.empty() && weights == fs_default_weights(xml);
    std::shared_ptr<ov::Model> model;
    if (!from_file) {
      try {
        model = core.read_model(xml, weights);
      } catch (const std::exception& exc) {
        bundle_error(xml + ": OpenVINO " + version + " cannot read the IR (" + first_line(exc) +
                     "); re-export the bundle for this OpenVINO version or upgrade OpenVINO");
      }
    }
    try {
      const ov::AnyMap config = compile_config(m, options.threads);
      compiled = from_file ? core.compile_model(xml, options.device, config)
                           : core.compile_model(model, options.device, config);
    } catch (const Error&) {
      throw;
    } catch (const std::exception& exc) {
      bundle_error(xml + ": OpenVINO " + version + " cannot read or compile the network for " + options.device + " (" +
                   first_line(exc) + "); re-export the bundle, or check the device and options");
    }
    const auto inputs = compiled.inputs();
    if (inputs.size() != 1 || !has_name(inputs[0], m.input_name)) {
      std::string names;
      for (const auto& port : inputs) names += (names.empty() ? "" : ", ") + port.get_any_name();
      bundle_error(xml + ": the network's inputs [" + names + "] do not match the manifest's ['" + m.input_name +
                   "']; the bundle is inconsistent, re-export it");
    }
  } catch (const Error&) {
    throw;
  } catch (const std::exception& exc) {  // ov::Core() itself: plugins missing or broken
    fail(EDGEIQA_ERR_BACKEND_UNAVAILABLE, "OpenVINO cannot start (" + first_line(exc) +
                                              "); check that the OpenVINO libraries and plugins beside libopenvino are installed");
  }
  const auto outputs = compiled.outputs();
  const auto output = std::find_if(outputs.begin(), outputs.end(), [&](const ov::Output<const ov::Node>& port) {
    return m.output_name.empty() || has_name(port, m.output_name);
  });
  if (output == outputs.end())
    bundle_error(xml + ": the manifest's output '" + m.output_name + "' is not among the network's outputs; re-export the bundle");
  return std::make_unique<OpenVINOBackend>(compiled, compiled.input(), *output, m);
}

}  // namespace edgeiqa
