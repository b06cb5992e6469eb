// The library's one error type: a status code of the C API plus a message that says what to do.
// Everything inside throws it; the C boundary (c_api.cpp) turns it into a return code and
// edgeiqa_last_error(), so no exception ever reaches the caller.
#pragma once

#include <stdexcept>
#include <string>

#include "edgeiqa.h"

namespace edgeiqa {

class Error : public std::runtime_error {
 public:
  Error(edgeiqa_status status, const std::string& message) : std::runtime_error(message), status_(status) {}
  edgeiqa_status status() const noexcept { return status_; }

 private:
  edgeiqa_status status_;
};

[[noreturn]] inline void fail(edgeiqa_status status, const std::string& message) { throw Error(status, message); }

// Python's BundleError, ImageError... as status codes.
[[noreturn]] inline void bundle_error(const std::string& message) { fail(EDGEIQA_ERR_BUNDLE, message); }
[[noreturn]] inline void image_error(const std::string& message) { fail(EDGEIQA_ERR_IMAGE, message); }

}  // namespace edgeiqa
