// Pillow's Image.resize for 8-bit RGB with the convolution filters (src/libImaging/Resample.c),
// reproduced bit for bit: the same coefficients (double), the same 22-bit fixed point and rounding,
// the same separable passes with the intermediate image rounded to uint8, in the same order.
#pragma once

#include "image.hpp"

namespace edgeiqa {

enum class Filter { Bilinear, Bicubic, Lanczos };

// Pillow 13's Image.resize(image, (out_width, out_height), filter) for an RGB image.
Rgb8Image resize(const Rgb8Image& image, int out_width, int out_height, Filter filter);

}  // namespace edgeiqa
