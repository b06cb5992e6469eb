/* C test driver of the edge-iqa C API, built plain and with AddressSanitizer + UBSan
 * (tests/test_native_runtime.py runs it). Bad bundles and bad frames must give an error code and a
 * message, never a crash; good frames must score the same whatever their layout (RGB/BGR, padded
 * stride) and whatever the number of threads.
 *
 *   edgeiqa_c_test GOOD_BUNDLE [BAD_BUNDLE EXPECTED_STATUS]...
 *
 * Prints "ok ..." / "FAIL ..." lines; exits 1 if any check failed. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edgeiqa.h"

static int failures = 0;

static void check(int ok, const char* what) {
  printf("%s %s\n", ok ? "ok" : "FAIL", what);
  if (!ok) ++failures;
}

/* status == expected and a non-empty message */
static void expect_error(edgeiqa_status status, edgeiqa_status expected, const char* what) {
  const char* message = edgeiqa_last_error();
  int ok = status == expected && message != NULL && message[0] != '\0';
  printf("%s %s: status %d (want %d): %s\n", ok ? "ok" : "FAIL", what, (int)status, (int)expected, message);
  if (!ok) ++failures;
}

/* A deterministic test pattern: smooth gradients plus texture, w x h RGB, rows padded to `stride`. */
static uint8_t* pattern(int w, int h, size_t stride, int bgr) {
  uint8_t* data = (uint8_t*)calloc(stride * (size_t)h, 1);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      uint8_t r = (uint8_t)((x * 255) / (w - 1)), g = (uint8_t)((y * 255) / (h - 1)), b = (uint8_t)((x * 7 + y * 13) % 256);
      uint8_t* p = data + (size_t)y * stride + (size_t)x * 3;
      p[0] = bgr ? b : r;
      p[1] = g;
      p[2] = bgr ? r : b;
    }
  return data;
}

struct job {
  edgeiqa_scorer* scorer;
  edgeiqa_frame frame;
  double expected;
  int mismatches;
  int errors;
};

static void* score_many(void* arg) {
  struct job* job = (struct job*)arg;
  for (int i = 0; i < 6; ++i) {
    double score = 0.0;
    if (edgeiqa_score(job->scorer, &job->frame, &score) != EDGEIQA_OK) ++job->errors;
    else if (score != job->expected) ++job->mismatches;
  }
  return NULL;
}

static void bad_frames(edgeiqa_scorer* scorer) {
  uint8_t* pixels = pattern(64, 48, 64 * 3, 0);
  double score = 0.0;
  edgeiqa_frame good = {pixels, 64, 48, 64 * 3, EDGEIQA_PIXEL_RGB8};
  edgeiqa_frame frame;

  expect_error(edgeiqa_score(scorer, NULL, &score), EDGEIQA_ERR_ARGUMENT, "NULL frame");
  frame = good; frame.data = NULL;
  expect_error(edgeiqa_score(scorer, &frame, &score), EDGEIQA_ERR_ARGUMENT, "NULL frame data");
  expect_error(edgeiqa_score(scorer, &good, NULL), EDGEIQA_ERR_ARGUMENT, "NULL score output");
  expect_error(edgeiqa_score(NULL, &good, &score), EDGEIQA_ERR_ARGUMENT, "NULL scorer");
  frame = good; frame.width = 0;
  expect_error(edgeiqa_score(scorer, &frame, &score), EDGEIQA_ERR_IMAGE, "zero width");
  frame = good; frame.height = 0;
  expect_error(edgeiqa_score(scorer, &frame, &score), EDGEIQA_ERR_IMAGE, "zero height");
  frame = good; frame.height = -48;
  expect_error(edgeiqa_score(scorer, &frame, &score), EDGEIQA_ERR_IMAGE, "negative height");
  frame = good; frame.width = 15;
  expect_error(edgeiqa_score(scorer, &frame, &score), EDGEIQA_ERR_IMAGE, "15 px wide (below 16)");
  frame = good; frame.width = 20000; frame.height = 20000; frame.stride = 60000;
  expect_error(edgeiqa_score(scorer, &frame, &score), EDGEIQA_ERR_IMAGE, "400 MP (above 100 MP)");
  frame = good; frame.stride = 64 * 3 - 1;
  expect_error(edgeiqa_score(scorer, &frame, &score), EDGEIQA_ERR_IMAGE, "stride one byte short of a row");
  frame = good; frame.stride = 0;
  expect_error(edgeiqa_score(scorer, &frame, &score), EDGEIQA_ERR_IMAGE, "stride 0");
  frame = good; frame.stride = (size_t)-1 / 2;
  expect_error(edgeiqa_score(scorer, &frame, &score), EDGEIQA_ERR_IMAGE, "stride overflowing the address space");
  frame = good; frame.format = 7;
  expect_error(edgeiqa_score(scorer, &frame, &score), EDGEIQA_ERR_IMAGE, "unknown pixel format");

  edgeiqa_frame batch[3] = {good, good, good};
  double scores[3] = {-1.0, -1.0, -1.0};
  batch[1].stride = 5;
  expect_error(edgeiqa_score_batch(scorer, batch, 3, scores), EDGEIQA_ERR_IMAGE, "batch with a bad frame 1");
  check(strstr(edgeiqa_last_error(), "frame 1") != NULL, "the batch error names frame 1");
  check(scores[0] == -1.0 && scores[2] == -1.0, "a failed batch writes no score");
  expect_error(edgeiqa_score_batch(scorer, NULL, 2, scores), EDGEIQA_ERR_ARGUMENT, "batch of NULL frames");

  float small[16];
  size_t needed = 0;
  expect_error(edgeiqa_preprocess(scorer, &good, small, 16, &needed), EDGEIQA_ERR_BUFFER_TOO_SMALL,
               "preprocess into a 16-float buffer");
  check(needed > 16, "preprocess reports the floats it needs");
  expect_error(edgeiqa_preprocess_spec("{not json", &good, small, 16, NULL), EDGEIQA_ERR_ARGUMENT, "spec: invalid JSON");
  expect_error(edgeiqa_preprocess_spec("{\"input_size\": [0, 8]}", &good, small, 16, NULL), EDGEIQA_ERR_BUNDLE,
               "spec: input_size 0");
  expect_error(edgeiqa_preprocess_spec("{\"input_size\": [8, 8], \"std\": [0, 1, 1]}", &good, small, 16, NULL),
               EDGEIQA_ERR_BUNDLE, "spec: std 0");
  expect_error(edgeiqa_preprocess_spec("{\"input_size\": [8, 8], \"version\": 2}", &good, small, 16, NULL),
               EDGEIQA_ERR_BUNDLE, "spec: newer version");
  free(pixels);
}

static void good_frames(edgeiqa_scorer* scorer) {
  /* Odd sizes score; RGB, BGR and a padded stride of the same pixels give the same score. */
  const int w = 97, h = 61;
  uint8_t* rgb = pattern(w, h, (size_t)w * 3, 0);
  uint8_t* bgr = pattern(w, h, (size_t)w * 3, 1);
  uint8_t* padded = pattern(w, h, (size_t)w * 3 + 13, 0);
  edgeiqa_frame frames[3] = {{rgb, w, h, (size_t)w * 3, EDGEIQA_PIXEL_RGB8},
                             {bgr, w, h, (size_t)w * 3, EDGEIQA_PIXEL_BGR8},
                             {padded, w, h, (size_t)w * 3 + 13, EDGEIQA_PIXEL_RGB8}};
  double a = 0, b = 1, c = 2;
  check(edgeiqa_score(scorer, &frames[0], &a) == EDGEIQA_OK, "odd-sized 97x61 frame scores");
  check(edgeiqa_score(scorer, &frames[1], &b) == EDGEIQA_OK && a == b, "BGR frame scores as its RGB twin");
  check(edgeiqa_score(scorer, &frames[2], &c) == EDGEIQA_OK && a == c, "padded stride scores as packed rows");
  double batch[3] = {0, 0, 0};
  check(edgeiqa_score_batch(scorer, frames, 3, batch) == EDGEIQA_OK, "batch of 3 scores");
  printf("scores %.17g %.17g %.17g batch %.17g %.17g %.17g\n", a, b, c, batch[0], batch[1], batch[2]);

  pthread_t threads[4];
  struct job jobs[4];
  for (int t = 0; t < 4; ++t) {
    jobs[t].scorer = scorer;
    jobs[t].frame = frames[t % 3];
    jobs[t].expected = a;
    jobs[t].mismatches = jobs[t].errors = 0;
    pthread_create(&threads[t], NULL, score_many, &jobs[t]);
  }
  int mismatches = 0, errors = 0;
  for (int t = 0; t < 4; ++t) {
    pthread_join(threads[t], NULL);
    mismatches += jobs[t].mismatches;
    errors += jobs[t].errors;
  }
  check(errors == 0 && mismatches == 0, "4 threads x 6 scores equal the single-thread score");

  edgeiqa_info info;
  check(edgeiqa_get_info(scorer, &info) == EDGEIQA_OK && info.num_crops >= 1 && info.input_height > 0,
        "get_info");
  printf("info model=%s runtime=%s precision=%s input=%dx%d crops=%d max_batch=%d\n", info.model, info.runtime,
         info.precision, info.input_height, info.input_width, info.num_crops, info.max_batch);
  free(rgb);
  free(bgr);
  free(padded);
}

int main(int argc, char** argv) {
  if (argc < 2 || argc % 2 != 0) {
    fprintf(stderr, "usage: edgeiqa_c_test GOOD_BUNDLE [BAD_BUNDLE EXPECTED_STATUS]...\n");
    return 2;
  }
  edgeiqa_scorer* scorer = (edgeiqa_scorer*)1;
  expect_error(edgeiqa_open(NULL, NULL, &scorer), EDGEIQA_ERR_ARGUMENT, "open NULL path");
  check(scorer == NULL, "a failed open sets the scorer to NULL");
  expect_error(edgeiqa_open(argv[1], NULL, NULL), EDGEIQA_ERR_ARGUMENT, "open with NULL output");
  edgeiqa_options options;
  memset(&options, 0, sizeof options);
  expect_error(edgeiqa_open(argv[1], &options, &scorer), EDGEIQA_ERR_ARGUMENT, "options not initialised");
  edgeiqa_options_init(&options);
  options.threads = -1;
  expect_error(edgeiqa_open(argv[1], &options, &scorer), EDGEIQA_ERR_ARGUMENT, "threads -1");

  for (int i = 2; i + 1 < argc; i += 2) {
    char what[512];
    snprintf(what, sizeof what, "bad bundle %s", argv[i]);
    scorer = (edgeiqa_scorer*)1;
    expect_error(edgeiqa_open(argv[i], NULL, &scorer), (edgeiqa_status)atoi(argv[i + 1]), what);
    check(scorer == NULL, "a failed open sets the scorer to NULL");
  }

  edgeiqa_options_init(&options);
  options.threads = 1;
  if (edgeiqa_open(argv[1], &options, &scorer) != EDGEIQA_OK) {
    printf("FAIL open the good bundle: %s\n", edgeiqa_last_error());
    return 1;
  }
  check(strcmp(edgeiqa_precision(scorer), "") != 0 && edgeiqa_model_name(scorer) != NULL, "model/precision readable");
  const char* dtype = edgeiqa_input_dtype(scorer);
  check((strcmp(dtype, "uint8") == 0 || strcmp(dtype, "float32") == 0) && edgeiqa_input_dtype(NULL) == NULL,
        "input dtype readable");
  printf("input dtype %s\n", dtype);
  bad_frames(scorer);
  good_frames(scorer);
  edgeiqa_close(scorer);
  edgeiqa_close(NULL);
  printf("%s: %d failure(s)\n", failures ? "FAILED" : "PASSED", failures);
  return failures ? 1 : 0;
}
