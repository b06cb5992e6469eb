#include "compile_cache.hpp"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <system_error>
#include <tuple>
#include <vector>

#include "error.hpp"
#include "sha256.hpp"

namespace edgeiqa {

namespace fs = std::filesystem;

namespace {

constexpr std::uint64_t kDefaultLimitMb = 1024;
constexpr auto kRecent = std::chrono::seconds(60);

const std::string& recorded_sha256(const Manifest& m, const std::string& name) {
  for (const FileRecord& f : m.files)
    if (f.name == name && !f.sha256.empty()) return f.sha256;
  bundle_error(m.bundle_dir + ": the manifest records no checksum for " + name + "; re-export the bundle");
}

std::uint64_t entry_size(const fs::directory_entry& entry) {
  std::error_code ec;
  if (!entry.is_directory(ec) || entry.is_symlink(ec)) {
    const auto size = entry.is_symlink(ec) ? 0 : entry.file_size(ec);
    return ec ? 0 : size;
  }
  std::uint64_t total = 0;
  for (fs::recursive_directory_iterator it(entry.path(), ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code size_ec;
    if (it->is_regular_file(size_ec)) {
      const auto size = it->file_size(size_ec);
      if (!size_ec) total += size;
    }
  }
  return total;
}

}  // namespace

std::string network_cache_key(const Manifest& m) {
  return sha256_hex(recorded_sha256(m, m.model_file) + recorded_sha256(m, m.weights_file)).substr(0, 24);
}

std::string network_cache_folder(const std::string& root, const std::string& key) {
  const fs::path folder = fs::path(root) / key;
  std::error_code ec;
  fs::create_directories(folder, ec);
  if (ec) return "";
  fs::last_write_time(folder, fs::file_time_type::clock::now(), ec);  // marks it as the most recently used
  if (ec || access(folder.c_str(), W_OK | X_OK) != 0) return "";
  return folder.string();
}

std::uint64_t cache_limit_bytes() {
  const char* given = std::getenv("EDGE_IQA_CACHE_MAX_MB");
  std::string value = given ? given : "";
  value.erase(0, value.find_first_not_of(" \t"));
  value.erase(value.find_last_not_of(" \t") + 1);
  if (value.empty()) return kDefaultLimitMb << 20;
  if (value.size() > 12 || !std::all_of(value.begin(), value.end(), [](unsigned char c) { return std::isdigit(c); }))
    fail(EDGEIQA_ERR_ARGUMENT, "EDGE_IQA_CACHE_MAX_MB='" + value + "': give the compiled-model cache's size limit as a "
                               "whole number of megabytes (e.g. 1024), or unset it for the default");
  return std::stoull(value) << 20;
}

void evict_cache(const std::string& root, const std::string& keep, std::uint64_t limit) {
  using Entry = std::tuple<fs::file_time_type, std::string, fs::path, std::uint64_t>;
  std::vector<Entry> entries;
  std::uint64_t total = 0;
  std::error_code ec;
  for (fs::directory_iterator it(root, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code time_ec;
    const auto modified = it->last_write_time(time_ec);
    if (time_ec) continue;
    const std::uint64_t size = entry_size(*it);
    total += size;
    entries.emplace_back(modified, it->path().filename().string(), it->path(), size);
  }
  std::sort(entries.begin(), entries.end());  // oldest first; ties by name, as Python sorts them
  const auto now = fs::file_time_type::clock::now();
  const fs::path kept(keep);
  for (const auto& [modified, name, path, size] : entries) {
    if (total <= limit) break;
    if (path == kept || now - modified < kRecent) continue;
    std::error_code remove_ec;
    fs::remove_all(path, remove_ec);
    total -= size;
  }
}

}  // namespace edgeiqa
