/* JPEG file -> 8-bit RGB with libjpeg(-turbo), for the score_frames sample. */
#ifndef EDGEIQA_JPEG_READER_H
#define EDGEIQA_JPEG_READER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Decodes `path` to interleaved RGB (gray is expanded; *pixels is malloc'ed, free() it). Returns 0,
 * or -1 with a message in err. Corrupt and truncated files are errors (libjpeg's warnings are
 * fatal here, as Pillow refuses truncated images); images over max_pixels are refused before
 * decoding. */
int edgeiqa_read_jpeg(const char* path, int64_t max_pixels, uint8_t** pixels, int* width, int* height, char* err,
                      size_t err_size);

#ifdef __cplusplus
}
#endif

#endif
