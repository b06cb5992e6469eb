/* Score one synthetic 64x48 RGB frame with a bundle: the smallest complete use of the C API.
 *   firmware_example BUNDLE   -> prints "score <value>" */
#include <edgeiqa.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: firmware_example BUNDLE\n");
    return 2;
  }
  enum { W = 64, H = 48 };
  static uint8_t pixels[H][W][3]; /* a camera frame would come from the ISP: RGB888, here packed rows */
  for (int y = 0; y < H; ++y)
    for (int x = 0; x < W; ++x) {
      pixels[y][x][0] = (uint8_t)((x * 255) / (W - 1));
      pixels[y][x][1] = (uint8_t)((y * 255) / (H - 1));
      pixels[y][x][2] = (uint8_t)((x * 7 + y * 13) % 256);
    }

  edgeiqa_options options;
  edgeiqa_options_init(&options);
  options.threads = 2;                 /* intra-op threads per inference */
  options.cache_dir = NULL;            /* e.g. "/var/cache/edge-iqa": faster boots after the first */
  edgeiqa_scorer* scorer = NULL;
  if (edgeiqa_open(argv[1], &options, &scorer) != EDGEIQA_OK) {
    fprintf(stderr, "cannot use the bundle: %s\n", edgeiqa_last_error());
    return 1;
  }
  edgeiqa_frame frame = {&pixels[0][0][0], W, H, W * 3, EDGEIQA_PIXEL_RGB8};
  double score = 0.0;
  edgeiqa_status status = edgeiqa_score(scorer, &frame, &score);
  if (status != EDGEIQA_OK) {
    fprintf(stderr, "frame skipped (status %d): %s\n", (int)status, edgeiqa_last_error());
  } else {
    printf("%s %s score %.17g\n", edgeiqa_model_name(scorer), edgeiqa_precision(scorer), score);
  }
  edgeiqa_close(scorer);
  return status == EDGEIQA_OK ? 0 : 1;
}
