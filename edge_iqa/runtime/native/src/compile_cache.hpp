// OpenVINO's compiled-model cache on disk, as the Python runtime keeps it
// (edge_iqa/runtime/compile_cache.py): one sub-folder of the cache root per network, named by the
// checksums of its files, touched at every open; after compiling, the least recently used
// sub-folders (and loose blobs) are removed until the root is within $EDGE_IQA_CACHE_MAX_MB
// (default 1024 MB). OpenVINO itself never removes a blob, so one shared folder only grows.
#pragma once

#include <cstdint>
#include <string>

#include "manifest.hpp"

namespace edgeiqa {

// The first 24 hex digits of sha256(model sha256 + weights sha256): Python's network_key.
std::string network_cache_key(const Manifest& manifest);

// root/key, created and marked as just used; "" when it cannot be written (then no cache).
std::string network_cache_folder(const std::string& root, const std::string& key);

// $EDGE_IQA_CACHE_MAX_MB in bytes (default 1024 MB); Error(EDGEIQA_ERR_ARGUMENT) when it is not a
// whole number of megabytes.
std::uint64_t cache_limit_bytes();

// Removes the least recently modified entries of `root` until it holds at most `limit` bytes;
// `keep` and entries modified in the last 60 seconds stay (another process may be compiling into
// them). Errors (an entry removed by another process meanwhile) are ignored.
void evict_cache(const std::string& root, const std::string& keep, std::uint64_t limit);

}  // namespace edgeiqa
