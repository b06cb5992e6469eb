// score_frames: the sample firmware-side program. Scores JPEG files and raw RGB/BGR frames with an
// edge-iqa bundle through the C API and prints one line per frame:
//
//   score_frames [--threads N] [--cache-dir DIR] [--raw WxH] [--timing] BUNDLE FRAME...
//
//   --cache-dir: OpenVINO's compiled-model cache (default: the library's, see edgeiqa.h; "" = none).
//   FRAME: a JPEG file, or a raw frame: *.rgb / *.raw (bytes R,G,B) or *.bgr (B,G,R), W x H pixels
//          given by --raw, rows packed.
//   stdout: "<frame>\t<score>" or "<frame>\terror: <what to do>" per frame, in order.
//   exit:   0 all scored, 1 some frames failed, 2 bad arguments or bundle.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "edgeiqa.h"
#include "jpeg_reader.h"

namespace {

struct Args {
  int threads = 0;
  bool cache_given = false;
  std::string cache_dir;
  int raw_width = 0, raw_height = 0;
  bool timing = false;
  std::string bundle;
  std::vector<std::string> frames;
};

int usage(const char* message) {
  std::fprintf(stderr, "score_frames: %s\nusage: score_frames [--threads N] [--cache-dir DIR] [--raw WxH] [--timing] "
                       "BUNDLE FRAME...\n", message);
  return 2;
}

bool ends_with(const std::string& s, const char* suffix) {
  const size_t n = std::strlen(suffix);
  if (s.size() < n) return false;
  for (size_t i = 0; i < n; ++i)
    if (std::tolower(static_cast<unsigned char>(s[s.size() - n + i])) != suffix[i]) return false;
  return true;
}

// Peak and current resident memory (MB) of this process: VmHWM / VmRSS of /proc/self/status, which
// start afresh at exec (getrusage's ru_maxrss keeps the parent's peak across fork + exec on Linux).
void memory_mb(double& peak, double& current) {
  peak = current = -1.0;
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmHWM:", 0) == 0) peak = std::atof(line.c_str() + 6) / 1024.0;
    if (line.rfind("VmRSS:", 0) == 0) current = std::atof(line.c_str() + 6) / 1024.0;
  }
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// One frame's pixels, from a JPEG or a raw file; returns "" or the error.
std::string load_frame(const Args& args, const std::string& path, std::vector<uint8_t>& pixels, edgeiqa_frame& frame) {
  frame = edgeiqa_frame{};
  const bool bgr = ends_with(path, ".bgr");
  if (bgr || ends_with(path, ".rgb") || ends_with(path, ".raw")) {
    if (!args.raw_width) return "a raw frame needs its size: pass --raw WIDTHxHEIGHT";
    std::ifstream in(path, std::ios::binary);
    if (!in) return "cannot open the file; check the path and permissions";
    pixels.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    const size_t expected = static_cast<size_t>(args.raw_width) * args.raw_height * 3;
    if (pixels.size() != expected)
      return "is " + std::to_string(pixels.size()) + " bytes; a " + std::to_string(args.raw_width) + "x" +
             std::to_string(args.raw_height) + " 8-bit 3-channel frame is " + std::to_string(expected) +
             " bytes: check --raw and the file";
    frame = {pixels.data(), args.raw_width, args.raw_height, static_cast<size_t>(args.raw_width) * 3,
             bgr ? EDGEIQA_PIXEL_BGR8 : EDGEIQA_PIXEL_RGB8};
    return "";
  }
  std::ifstream probe(path, std::ios::binary);
  unsigned char magic[3] = {0, 0, 0};
  if (!probe) return "cannot open the file; check the path and permissions";
  probe.read(reinterpret_cast<char*>(magic), 3);
  if (probe.gcount() == 0) return "the file is empty (0 bytes); re-copy the frame";
  if (magic[0] != 0xFF || magic[1] != 0xD8 || magic[2] != 0xFF)
    return "not a JPEG; score_frames reads JPEG files and raw .rgb/.bgr frames (--raw WxH)";
  uint8_t* decoded = nullptr;
  int width = 0, height = 0;
  char err[256] = {0};
  if (edgeiqa_read_jpeg(path.c_str(), 100000000, &decoded, &width, &height, err, sizeof err) != 0) return err;
  pixels.assign(decoded, decoded + static_cast<size_t>(width) * height * 3);
  std::free(decoded);
  frame = {pixels.data(), width, height, static_cast<size_t>(width) * 3, EDGEIQA_PIXEL_RGB8};
  return "";
}

}  // namespace

int main(int argc, char** argv) {
  const auto start = std::chrono::steady_clock::now();
  Args args;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    if (arg == "--threads") {
      const char* v = value();
      if (!v || (args.threads = std::atoi(v)) <= 0) return usage("--threads needs a positive integer");
    } else if (arg == "--cache-dir") {
      const char* v = value();
      if (!v) return usage("--cache-dir needs a folder");
      args.cache_dir = v;
      args.cache_given = true;
    } else if (arg == "--raw") {
      const char* v = value();
      if (!v || std::sscanf(v, "%dx%d", &args.raw_width, &args.raw_height) != 2 || args.raw_width <= 0 || args.raw_height <= 0)
        return usage("--raw needs WIDTHxHEIGHT, e.g. --raw 1920x1080");
    } else if (arg == "--timing") {
      args.timing = true;
    } else if (arg == "-h" || arg == "--help") {
      return usage("scores frames with an edge-iqa bundle");
    } else if (args.bundle.empty()) {
      args.bundle = arg;
    } else {
      args.frames.push_back(arg);
    }
  }
  if (args.bundle.empty() || args.frames.empty()) return usage("pass a bundle folder and at least one frame");

  edgeiqa_options options;
  edgeiqa_options_init(&options);
  options.threads = args.threads;
  options.cache_dir = args.cache_given ? args.cache_dir.c_str() : nullptr;
  edgeiqa_scorer* scorer = nullptr;
  if (edgeiqa_open(args.bundle.c_str(), &options, &scorer) != EDGEIQA_OK) {
    std::fprintf(stderr, "score_frames: cannot use the bundle: %s\n", edgeiqa_last_error());
    return 2;
  }
  const double opened = seconds_since(start);
  double first_score = 0.0;
  int failed = 0;
  std::vector<uint8_t> pixels;
  for (const std::string& path : args.frames) {
    edgeiqa_frame frame;
    std::string error = load_frame(args, path, pixels, frame);
    double score = 0.0;
    if (error.empty() && edgeiqa_score(scorer, &frame, &score) != EDGEIQA_OK) error = edgeiqa_last_error();
    if (!first_score) first_score = seconds_since(start);
    if (error.empty()) {
      std::printf("%s\t%.17g\n", path.c_str(), score);
    } else {
      std::printf("%s\terror: %s\n", path.c_str(), error.c_str());
      ++failed;
    }
  }
  std::fflush(stdout);
  if (args.timing) {
    double peak = 0.0, current = 0.0;
    memory_mb(peak, current);
    std::fprintf(stderr, "timing: open %.4f s, first frame done %.4f s, total %.4f s, max RSS %.1f MB, RSS %.1f MB\n",
                 opened, first_score, seconds_since(start), peak, current);
  }
  edgeiqa_close(scorer);
  return failed ? 1 : 0;
}
