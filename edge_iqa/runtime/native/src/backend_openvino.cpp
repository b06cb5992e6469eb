#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <openvino/op/constant.hpp>
#include <openvino/op/convert.hpp>
#include <openvino/op/divide.hpp>
#include <openvino/op/subtract.hpp>
#include <openvino/op/transpose.hpp>
#include <openvino/openvino.hpp>
#include <set>
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

// The network input's element type and the shape of one row, per the manifest's encoding.
ov::element::Type element_type(InputEncoding encoding) {
  return encoding == InputEncoding::Pixels ? ov::element::u8 : ov::element::f32;
}

ov::Shape row_shape(const Manifest& m) {
  const size_t h = m.spec.input_height, w = m.spec.input_width;
  return m.input_encoding == InputEncoding::Pixels ? ov::Shape{h, w, 3} : ov::Shape{3, h, w};
}

class OpenVINOBackend final : public Backend {
 public:
  OpenVINOBackend(ov::CompiledModel compiled, ov::Output<const ov::Node> input, ov::Output<const ov::Node> output,
                  const Manifest& m)
      : compiled_(std::move(compiled)), input_(std::move(input)), output_(std::move(output)),
        element_(element_type(m.input_encoding)), row_shape_(row_shape(m)) {}

  void run(const void* input, int rows, float* out) override {
    ov::InferRequest request = borrow();
    try {
      ov::Shape shape = row_shape_;
      shape.insert(shape.begin(), static_cast<size_t>(rows));
      // Wraps the caller's buffer: no copy. OpenVINO only reads it.
      request.set_tensor(input_, ov::Tensor(element_, shape, const_cast<void*>(input)));
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
  ov::element::Type element_;
  ov::Shape row_shape_;  // one row: (3, H, W) or (H, W, 3)
  std::mutex mutex_;
  std::vector<ov::InferRequest> idle_;
};

// backends/openvino.py exact_pixel_front: a uint8-input network's first ops (NHWC -> NCHW, / 255,
// - mean, / std) are rebuilt from the bundle's spec with the divisions kept as divisions. OpenVINO
// otherwise rewrites them (reciprocal multiplications, a fused scale-shift, folding into the first
// convolution), which moves the first layer's input by a float32 ulp for some pixel values, and an
// INT8 network turns that into score changes of MOS points. Rebuilt, the network computes on exactly
// the float rows a float-input bundle is fed: the scores are Python's, bit for bit. Applied after
// read_model, before compile_model (the attribute that keeps a division is not saved in the IR).
void exact_pixel_front(ov::Model& model, const PreprocessSpec& spec, const std::string& xml) {
  // The ops the front is made of, before and after OpenVINO rewrote it (openvino.py _FRONT_OPS).
  static const std::set<std::string> kFrontOps{"Convert", "Multiply", "Add", "Divide", "Subtract", "Transpose"};
  // The rebuilt front's last op (openvino.py FRONT_END_NAME).
  static const std::string kFrontEndName = "edge_iqa_pixel_rows";
  const ov::Output<ov::Node> pixels = model.input(0);
  std::shared_ptr<ov::Node> end = pixels.get_node_shared_ptr();
  // Where the front ends (openvino.py): a front rebuilt by the export (the calibrated network is saved
  // with it) names its last op; the exported graph's own front (normalise, then permute) ends with its
  // NCHW transpose. Never walk past either into the model's own ops. (The pixels also feed shape-only
  // ops, e.g. the ShapeOf of a dynamic batch: not the front.)
  bool rebuilt = false;
  for (const auto& op : model.get_ordered_ops())
    if (op->get_friendly_name() == kFrontEndName) {
      end = op;
      rebuilt = true;
      break;
    }
  while (!rebuilt && std::string(end->get_type_name()) != "Transpose") {
    std::vector<std::shared_ptr<ov::Node>> front;
    for (const ov::Input<ov::Node>& target : end->output(0).get_target_inputs())
      if (kFrontOps.count(target.get_node()->get_type_name())) front.push_back(target.get_node()->shared_from_this());
    if (front.size() != 1) break;
    end = front[0];
  }
  if (!rebuilt && std::string(end->get_type_name()) != "Transpose")
    bundle_error(xml + ": the bundle declares a uint8 pixel input but its network does not start with the "
                       "pixels' normalisation; re-export the bundle");
  const auto constant = [](const ov::Shape& shape, std::vector<float> values) {
    return ov::op::v0::Constant::create(ov::element::f32, shape, values);
  };
  const auto exact_divide = [](const ov::Output<ov::Node>& x, const std::shared_ptr<ov::Node>& divisor) {
    auto node = std::make_shared<ov::op::v1::Divide>(x, divisor);
    node->get_rt_info()["nonconvertable_divide_0"] = true;  // (sic: OpenVINO's spelling) keeps x / c exact
    return node;
  };
  // The manifest's mean and std as float32, as np.asarray(spec.mean, np.float32), shaped (1, 3, 1, 1):
  // NCHW first (on the bytes: a quarter of the traffic), so that the per-channel constants broadcast
  // over planes (OpenVINO's division broadcasting over the last axis of NHWC ran 5x slower).
  const auto per_channel = [&](const std::array<double, 3>& v) {
    return constant(ov::Shape{1, 3, 1, 1},
                    {static_cast<float>(v[0]), static_cast<float>(v[1]), static_cast<float>(v[2])});
  };
  const auto planes = std::make_shared<ov::op::v1::Transpose>(
      pixels, ov::op::v0::Constant::create(ov::element::i64, ov::Shape{4}, std::vector<int64_t>{0, 3, 1, 2}));
  std::shared_ptr<ov::Node> rows =
      exact_divide(std::make_shared<ov::op::v0::Convert>(planes, ov::element::f32), constant(ov::Shape{}, {255.0f}));
  if (spec.normalize)
    rows = exact_divide(std::make_shared<ov::op::v1::Subtract>(rows, per_channel(spec.mean)), per_channel(spec.std));
  rows->set_friendly_name(kFrontEndName);
  for (ov::Input<ov::Node> target : end->output(0).get_target_inputs()) target.replace_source_output(rows->output(0));
  model.validate_nodes_and_infer_types();
}

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
    // A pixel bundle's network is changed before compiling (exact_pixel_front): always read.
    const bool pixels = m.input_encoding == InputEncoding::Pixels;
    const bool from_file = !options.cache_dir.empty() && weights == fs_default_weights(xml) && !pixels;
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
      if (pixels) exact_pixel_front(*model, m.spec, xml);
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
    // Refused here rather than by every inference (the Python backend's warm-up fails at load too).
    if (inputs[0].get_element_type() != element_type(m.input_encoding))
      bundle_error(xml + ": the network's input '" + m.input_name + "' is " + inputs[0].get_element_type().get_type_name() +
                   ", the manifest declares " + dtype_name(m.input_encoding) +
                   "; the bundle is inconsistent, re-export it");
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
