#include "image.hpp"

#include <cstring>
#include <string>

#include "error.hpp"

namespace edgeiqa {

void check_frame(const edgeiqa_frame* frame, const char* what) {
  const std::string name(what);
  if (frame == nullptr) fail(EDGEIQA_ERR_ARGUMENT, name + ": the frame pointer is NULL; pass an edgeiqa_frame");
  if (frame->data == nullptr)
    fail(EDGEIQA_ERR_ARGUMENT, name + ": frame.data is NULL; point it at the first pixel of the first row");
  if (frame->format != EDGEIQA_PIXEL_RGB8 && frame->format != EDGEIQA_PIXEL_BGR8)
    image_error(name + ": unknown pixel format " + std::to_string(frame->format) +
                "; use EDGEIQA_PIXEL_RGB8 or EDGEIQA_PIXEL_BGR8 (8-bit interleaved, 3 bytes a pixel)");
  const int64_t w = frame->width, h = frame->height;
  if (w <= 0 || h <= 0)
    image_error(name + ": is " + std::to_string(w) + "x" + std::to_string(h) +
                "; width and height must be positive (at least 16 pixels each)");
  if (w < kMinSide || h < kMinSide)
    image_error(name + ": is " + std::to_string(w) + "x" + std::to_string(h) + "; edge-iqa needs at least " +
                std::to_string(kMinSide) + " pixels on each side: score the full-size frame, not a thumbnail");
  if (w * h > kMaxPixels)
    image_error(name + ": is " + std::to_string(w) + "x" + std::to_string(h) + " = " + std::to_string(w * h) +
                " pixels, above the limit of " + std::to_string(kMaxPixels) + "; downscale it first");
  const uint64_t row_bytes = static_cast<uint64_t>(w) * 3;
  if (frame->stride < row_bytes)
    image_error(name + ": stride " + std::to_string(frame->stride) + " bytes is shorter than a row of " +
                std::to_string(w) + " pixels (" + std::to_string(row_bytes) +
                " bytes); pass the distance in bytes between the starts of two rows");
  // The last byte read is data + (h - 1) * stride + row_bytes - 1: that offset must not overflow.
  if (frame->stride > (SIZE_MAX - row_bytes) / static_cast<uint64_t>(h))
    image_error(name + ": stride " + std::to_string(frame->stride) + " is too large for a frame of " +
                std::to_string(h) + " rows; pass the distance in bytes between the starts of two rows");
}

Rgb8Image to_rgb(const edgeiqa_frame& frame) {
  Rgb8Image image(frame.width, frame.height);
  const size_t row_bytes = static_cast<size_t>(frame.width) * 3;
  for (int y = 0; y < frame.height; ++y) {
    const uint8_t* src = frame.data + static_cast<size_t>(y) * frame.stride;
    uint8_t* dst = image.row(y);
    if (frame.format == EDGEIQA_PIXEL_RGB8) {
      std::memcpy(dst, src, row_bytes);
    } else {
      for (size_t x = 0; x < row_bytes; x += 3) {
        dst[x] = src[x + 2];
        dst[x + 1] = src[x + 1];
        dst[x + 2] = src[x];
      }
    }
  }
  return image;
}

}  // namespace edgeiqa
