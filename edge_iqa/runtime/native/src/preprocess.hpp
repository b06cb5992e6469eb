// The preprocessing spec of a bundle (manifest["preprocess"], edge_iqa.data.preprocess.PreprocessSpec)
// and its application to a frame, in two separate steps so that the input encoding can change
// without touching the geometry:
//
//   frame (RGB8) --geometry: resize policy + crops--> uint8 crops --encoding--> network input rows
//
// The encoding is the manifest's (io.inputs[0].dtype): float32 rows in [0, 1], normalised with
// mean/std when `normalize`; or (schema 2) the crops' uint8 pixels, which the network itself
// scales and normalises the same way.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "image.hpp"
#include "resample.hpp"

namespace edgeiqa {

// PreprocessSpec.version this library reads.
constexpr int kPreprocessVersion = 1;

enum class ResizePolicy { ShorterSide, Exact, None };
enum class CropPolicy { Center, Grid, None };

// What one network input row is (backends.base.InputRecord):
enum class InputEncoding {
  FloatRows,  // dtype "float32": (3, H, W) float32, normalised here (NCHW)
  Pixels,     // dtype "uint8": (H, W, 3) bytes as cut from the resized frame (NHWC); the network normalises
};
// The manifest's dtype name of an encoding: "float32" or "uint8".
const char* dtype_name(InputEncoding encoding);

struct PreprocessSpec {
  int input_height = 0;
  int input_width = 0;
  ResizePolicy resize = ResizePolicy::ShorterSide;
  int resize_to = 0;  // 0: null (min(input_size))
  CropPolicy crop = CropPolicy::Center;
  int grid_rows = 1;
  int grid_cols = 1;
  std::array<double, 3> mean{0.485, 0.456, 0.406};
  std::array<double, 3> std{0.229, 0.224, 0.225};
  bool normalize = true;
  Filter interpolation = Filter::Bilinear;

  int num_crops() const { return crop == CropPolicy::Grid ? grid_rows * grid_cols : 1; }
  size_t row_floats() const { return static_cast<size_t>(3) * input_height * input_width; }
  size_t row_bytes(InputEncoding encoding) const {
    return row_floats() * (encoding == InputEncoding::Pixels ? sizeof(uint8_t) : sizeof(float));
  }

  // PreprocessSpec.from_dict + __post_init__; throws Error(EDGEIQA_ERR_BUNDLE) saying what is wrong.
  static PreprocessSpec from_json(const nlohmann::json& data);
};

struct CropBox {
  int row;
  int col;
};

// Step 1, geometry: the resized image and the top-left corners of its crops.
struct Geometry {
  Rgb8Image resized;
  std::vector<CropBox> crops;
};
Geometry apply_geometry(const PreprocessSpec& spec, const Rgb8Image& image);

// Step 2, encoding: one uint8 crop -> one network input row. A lookup table per channel holds
// exactly the float32 value the Python side computes for each byte, so float rows are bit-identical.
class InputEncoder {
 public:
  InputEncoder(const PreprocessSpec& spec, InputEncoding encoding);
  // Writes the crop at `box` of `resized` as one row in this encoder's encoding (spec.row_bytes bytes).
  void encode(const Rgb8Image& resized, CropBox box, void* out) const;
  // Writes the crop as a (3, H, W) float32 row normalised per the spec, whatever the encoding: what a
  // float network takes, and what a pixel network computes from the pixels.
  void normalize(const Rgb8Image& resized, CropBox box, float* out) const;

 private:
  int height_, width_;
  InputEncoding encoding_;
  std::array<std::array<float, 256>, 3> table_;
};

// Both steps: one frame's (num_crops, 3, H, W) float32 normalised rows (edgeiqa_preprocess).
std::vector<float> preprocess(const PreprocessSpec& spec, const InputEncoder& encoder, const Rgb8Image& image);

}  // namespace edgeiqa
