// A decoded frame as the preprocessing sees it: contiguous interleaved 8-bit RGB, and the checks
// a caller's frame must pass first (the native twin of edge_iqa.data.imageio's array checks).
#pragma once

#include <cstdint>
#include <vector>

#include "edgeiqa.h"

namespace edgeiqa {

// Same limits as edge_iqa.data.imageio: MIN_SIDE and MAX_PIXELS.
constexpr int kMinSide = 16;
constexpr int64_t kMaxPixels = 100000000;

struct Rgb8Image {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> pixels;  // height rows of width * 3 bytes, R G B

  Rgb8Image() = default;
  Rgb8Image(int w, int h) : width(w), height(h), pixels(static_cast<size_t>(w) * h * 3) {}
  const uint8_t* row(int y) const { return pixels.data() + static_cast<size_t>(y) * width * 3; }
  uint8_t* row(int y) { return pixels.data() + static_cast<size_t>(y) * width * 3; }
};

// Throws Error(EDGEIQA_ERR_ARGUMENT / EDGEIQA_ERR_IMAGE) for a frame that cannot be scored. `what`
// names it in the message (e.g. "frame 3").
void check_frame(const edgeiqa_frame* frame, const char* what);

// The checked frame as contiguous RGB (BGR is swapped, row padding dropped).
Rgb8Image to_rgb(const edgeiqa_frame& frame);

}  // namespace edgeiqa
