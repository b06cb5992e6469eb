// The preprocessing spec of a bundle (manifest["preprocess"], edge_iqa.data.preprocess.PreprocessSpec)
// and its application to a frame, in two separate steps so that the input encoding can change
// without touching the geometry:
//
//   frame (RGB8) --geometry: resize policy + crops--> uint8 crops --encoding--> network input rows
//
// The encoding is the manifest's: float32 in [0, 1], normalised with mean/std when `normalize`.
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

// Step 2, encoding: uint8 crops -> network input rows (NCHW). A lookup table per channel holds
// exactly the float32 value the Python side computes for each byte, so the rows are bit-identical.
class InputEncoder {
 public:
  explicit InputEncoder(const PreprocessSpec& spec);
  // Writes spec.num_crops() rows of 3 x H x W floats to `out`.
  void encode(const Geometry& geometry, float* out) const;

 private:
  int height_, width_;
  std::array<std::array<float, 256>, 3> table_;
};

// Both steps: one frame's (num_crops, 3, H, W) float32 rows.
std::vector<float> preprocess(const PreprocessSpec& spec, const InputEncoder& encoder, const Rgb8Image& image);

}  // namespace edgeiqa
