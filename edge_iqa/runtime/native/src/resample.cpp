#include "resample.hpp"

#include <cmath>
#include <cstdint>
#include <vector>

namespace edgeiqa {
namespace {

// Fixed point of the 8-bit passes: 32 bits - 8 for the value - 2 for overshooting filters.
constexpr int kPrecisionBits = 32 - 8 - 2;
constexpr double kPi = 3.14159265358979323846;  // M_PI

double bilinear_filter(double x) {
  if (x < 0.0) x = -x;
  if (x < 1.0) return 1.0 - x;
  return 0.0;
}

double bicubic_filter(double x) {
  constexpr double a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

double sinc_filter(double x) {
  if (x == 0.0) return 1.0;
  x = x * kPi;
  return std::sin(x) / x;
}

double lanczos_filter(double x) {
  if (-3.0 <= x && x < 3.0) return sinc_filter(x) * sinc_filter(x / 3);
  return 0.0;
}

struct FilterDef {
  double (*function)(double);
  double support;
};

FilterDef filter_def(Filter filter) {
  switch (filter) {
    case Filter::Bicubic: return {bicubic_filter, 2.0};
    case Filter::Lanczos: return {lanczos_filter, 3.0};
    case Filter::Bilinear: break;
  }
  return {bilinear_filter, 1.0};
}

// Per output pixel: the first input index, the tap count, and ksize fixed-point weights.
struct Coefficients {
  int ksize = 0;
  std::vector<int> first;
  std::vector<int> count;
  std::vector<int32_t> weights;  // out_size * ksize
};

// precompute_coeffs + normalize_coeffs_8bpc of Resample.c (box = the whole image: in0 = 0).
Coefficients precompute(int in_size, int out_size, FilterDef filter) {
  double filterscale = static_cast<double>(static_cast<float>(in_size)) / out_size;  // (double)(in1 - in0) / outSize
  const double scale = filterscale;
  if (filterscale < 1.0) filterscale = 1.0;
  const double support = filter.support * filterscale;
  Coefficients c;
  c.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  c.first.resize(out_size);
  c.count.resize(out_size);
  c.weights.assign(static_cast<size_t>(out_size) * c.ksize, 0);
  std::vector<double> k(c.ksize);
  const double inv_filterscale = 1.0 / filterscale;
  for (int xx = 0; xx < out_size; ++xx) {
    const double center = (xx + 0.5) * scale;
    double ww = 0.0;
    int xmin = static_cast<int>(center - support + 0.5);  // C cast: truncation toward zero
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    for (int x = 0; x < xmax; ++x) {
      const double w = filter.function((x + xmin - center + 0.5) * inv_filterscale);
      k[x] = w;
      ww += w;
    }
    if (ww != 0.0)
      for (int x = 0; x < xmax; ++x) k[x] /= ww;
    int32_t* out = &c.weights[static_cast<size_t>(xx) * c.ksize];
    for (int x = 0; x < xmax; ++x)
      out[x] = k[x] < 0 ? static_cast<int32_t>(-0.5 + k[x] * (1 << kPrecisionBits))
                        : static_cast<int32_t>(0.5 + k[x] * (1 << kPrecisionBits));
    c.first[xx] = xmin;
    c.count[xx] = xmax;
  }
  return c;
}

// clip8 of Resample.c: the accumulator's integer part, clamped to 0..255.
inline uint8_t clip8(int32_t acc) {
  const int32_t v = acc >> kPrecisionBits;
  return static_cast<uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v));
}

Rgb8Image horizontal_pass(const Rgb8Image& in, int out_width, FilterDef filter) {
  const Coefficients c = precompute(in.width, out_width, filter);
  Rgb8Image out(out_width, in.height);
  for (int y = 0; y < in.height; ++y) {
    const uint8_t* src = in.row(y);
    uint8_t* dst = out.row(y);
    for (int xx = 0; xx < out_width; ++xx) {
      const int32_t* k = &c.weights[static_cast<size_t>(xx) * c.ksize];
      const uint8_t* p = src + static_cast<size_t>(c.first[xx]) * 3;
      int32_t s0 = 1 << (kPrecisionBits - 1), s1 = s0, s2 = s0;
      for (int x = 0; x < c.count[xx]; ++x) {
        s0 += p[x * 3 + 0] * k[x];
        s1 += p[x * 3 + 1] * k[x];
        s2 += p[x * 3 + 2] * k[x];
      }
      dst[xx * 3 + 0] = clip8(s0);
      dst[xx * 3 + 1] = clip8(s1);
      dst[xx * 3 + 2] = clip8(s2);
    }
  }
  return out;
}

Rgb8Image vertical_pass(const Rgb8Image& in, int out_height, FilterDef filter) {
  const Coefficients c = precompute(in.height, out_height, filter);
  Rgb8Image out(in.width, out_height);
  const size_t row_bytes = static_cast<size_t>(in.width) * 3;
  std::vector<int32_t> acc(row_bytes);
  for (int yy = 0; yy < out_height; ++yy) {
    // Integer sums are exact, so accumulating row by row (cache friendly) gives Pillow's values.
    std::fill(acc.begin(), acc.end(), 1 << (kPrecisionBits - 1));
    const int32_t* k = &c.weights[static_cast<size_t>(yy) * c.ksize];
    for (int y = 0; y < c.count[yy]; ++y) {
      const uint8_t* src = in.row(c.first[yy] + y);
      const int32_t w = k[y];
      for (size_t i = 0; i < row_bytes; ++i) acc[i] += src[i] * w;
    }
    uint8_t* dst = out.row(yy);
    for (size_t i = 0; i < row_bytes; ++i) dst[i] = clip8(acc[i]);
  }
  return out;
}

}  // namespace

Rgb8Image resize(const Rgb8Image& image, int out_width, int out_height, Filter filter) {
  const FilterDef def = filter_def(filter);
  const int dh = image.height - out_height, dw = image.width - out_width;
  // Pillow 13 runs the vertical pass first when the height shrinks by more than twice as many
  // pixels as the width (checked against Pillow 13.0 in tests/test_native_runtime.py); else the
  // horizontal pass first, as every older Pillow. A pass whose length does not change is skipped.
  if (dh > 0 && dh > 2 * dw) {
    Rgb8Image tall = vertical_pass(image, out_height, def);
    return out_width != image.width ? horizontal_pass(tall, out_width, def) : tall;
  }
  if (out_width != image.width) {
    Rgb8Image wide = horizontal_pass(image, out_width, def);
    return out_height != image.height ? vertical_pass(wide, out_height, def) : wide;
  }
  return out_height != image.height ? vertical_pass(image, out_height, def) : image;
}

}  // namespace edgeiqa
