/* Written in C because libjpeg reports errors with longjmp, which must not cross C++ frames. */
#include "jpeg_reader.h"

#include <stdio.h> /* before jpeglib.h, which uses FILE */

#include <jpeglib.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

struct error_manager {
  struct jpeg_error_mgr base;
  jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

static void on_error(j_common_ptr cinfo) {
  struct error_manager* manager = (struct error_manager*)cinfo->err;
  (*cinfo->err->format_message)(cinfo, manager->message);
  longjmp(manager->jump, 1);
}

static void on_message(j_common_ptr cinfo, int level) {
  if (level < 0) on_error(cinfo); /* a warning (truncated or corrupt data): refuse the file */
}

int edgeiqa_read_jpeg(const char* path, int64_t max_pixels, uint8_t** pixels, int* width, int* height, char* err,
                      size_t err_size) {
  struct jpeg_decompress_struct cinfo;
  struct error_manager manager;
  FILE* volatile file = NULL;
  uint8_t* volatile out = NULL;
  *pixels = NULL;
  file = fopen(path, "rb");
  if (!file) {
    snprintf(err, err_size, "cannot open the file; check the path and permissions");
    return -1;
  }
  cinfo.err = jpeg_std_error(&manager.base);
  manager.base.error_exit = on_error;
  manager.base.emit_message = on_message;
  if (setjmp(manager.jump)) {
    snprintf(err, err_size, "corrupt or truncated JPEG (%s); re-export or re-copy it", manager.message);
    jpeg_destroy_decompress(&cinfo);
    fclose(file);
    free(out);
    return -1;
  }
  jpeg_create_decompress(&cinfo);
  jpeg_stdio_src(&cinfo, file);
  jpeg_read_header(&cinfo, TRUE);
  if ((int64_t)cinfo.image_width * cinfo.image_height > max_pixels) {
    snprintf(err, err_size, "declares %ux%u pixels, above the limit of %lld; downscale it", cinfo.image_width,
             cinfo.image_height, (long long)max_pixels);
    jpeg_destroy_decompress(&cinfo);
    fclose(file);
    return -1;
  }
  if (cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK) {
    snprintf(err, err_size, "is a CMYK JPEG; the sample reads RGB and grayscale JPEGs: convert it to RGB");
    jpeg_destroy_decompress(&cinfo);
    fclose(file);
    return -1;
  }
  cinfo.out_color_space = JCS_RGB; /* Pillow's defaults otherwise: islow DCT, fancy upsampling */
  jpeg_start_decompress(&cinfo);
  const size_t row = (size_t)cinfo.output_width * 3;
  out = (uint8_t*)malloc(row * cinfo.output_height);
  if (!out) {
    snprintf(err, err_size, "out of memory for %ux%u pixels", cinfo.output_width, cinfo.output_height);
    jpeg_destroy_decompress(&cinfo);
    fclose(file);
    return -1;
  }
  while (cinfo.output_scanline < cinfo.output_height) {
    JSAMPROW line = out + row * cinfo.output_scanline;
    jpeg_read_scanlines(&cinfo, &line, 1);
  }
  jpeg_finish_decompress(&cinfo);
  *width = (int)cinfo.output_width;
  *height = (int)cinfo.output_height;
  jpeg_destroy_decompress(&cinfo);
  fclose(file);
  *pixels = out;
  return 0;
}
