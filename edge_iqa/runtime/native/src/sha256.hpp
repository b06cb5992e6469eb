#pragma once

#include <string>

namespace edgeiqa {

// Lower-case hex sha256 of a file (OpenSSL EVP); throws Error(EDGEIQA_ERR_BUNDLE) when it cannot be read.
std::string sha256_file(const std::string& path, const std::string& display_name);

// Lower-case hex sha256 of bytes in memory.
std::string sha256_hex(const std::string& data);

}  // namespace edgeiqa
