/* edgeiqa.h: the C API of the edge-iqa native runtime.
 *
 * Loads a bundle written by `edge-iqa export` (manifest.json + the network) and scores 8-bit RGB or
 * BGR frames with it, exactly as the Python runtime `edge_iqa.runtime` does: the manifest and every
 * file's sha256 and size are verified at open, frames are preprocessed bit for bit like the Python
 * side (Pillow's antialiased resize, crops, normalisation), the network runs on OpenVINO, the crops
 * are averaged and the manifest's output_transform is applied. A bundle's network takes either
 * float32 rows normalised here or (manifest schema 2, the cpu target's default) the crops' uint8
 * pixels, which it scales and normalises itself; the library feeds each what it declares.
 *
 * Contract:
 *   - Every function returns an edgeiqa_status (or a value documented below); no C++ exception ever
 *     crosses this boundary. On failure, edgeiqa_last_error() gives a message that says what went
 *     wrong and what to do; it is per thread (like errno) and valid until the next call on that
 *     thread.
 *   - One edgeiqa_scorer may be shared by several threads: edgeiqa_score, edgeiqa_score_batch and
 *     edgeiqa_preprocess may run concurrently on it and return exactly (bit for bit) what one thread
 *     returns for the same call. edgeiqa_close must not race with any other call on that scorer.
 *   - The library keeps no pointer to caller memory after a call returns.
 */
#ifndef EDGEIQA_H
#define EDGEIQA_H

#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32)
#define EDGEIQA_API __declspec(dllexport)
#else
#define EDGEIQA_API __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

#define EDGEIQA_VERSION_MAJOR 0
#define EDGEIQA_VERSION_MINOR 1
#define EDGEIQA_VERSION_PATCH 0

/* An opened bundle; create with edgeiqa_open, free with edgeiqa_close. */
typedef struct edgeiqa_scorer edgeiqa_scorer;

typedef enum edgeiqa_status {
    EDGEIQA_OK = 0,
    /* A null pointer, a null/empty path or a bad option: a mistake in the calling code. */
    EDGEIQA_ERR_ARGUMENT = 1,
    /* The bundle cannot be used: missing folder/manifest/file, checksum or size mismatch, schema
     * from a newer edge-iqa, unknown runtime, a file name outside the bundle, an inconsistent
     * manifest, or a network that fails to load or run. (Python: BundleError.) Re-export it. */
    EDGEIQA_ERR_BUNDLE = 2,
    /* The bundle's runtime is known but not compiled into this library (e.g. an "onnxruntime"
     * bundle), or the OpenVINO device cannot be used. (Python: BackendUnavailableError.) */
    EDGEIQA_ERR_BACKEND_UNAVAILABLE = 3,
    /* This frame cannot be scored: zero/negative/too small (< 16 px a side) or too large
     * (> 100 MP) size, a stride shorter than a row, an unknown pixel format. (Python: ImageError.) */
    EDGEIQA_ERR_IMAGE = 4,
    /* An output buffer is too small (edgeiqa_preprocess); the message gives the size needed. */
    EDGEIQA_ERR_BUFFER_TOO_SMALL = 5,
    /* Out of memory or an unexpected failure inside the library (a bug: please report it). */
    EDGEIQA_ERR_INTERNAL = 6
} edgeiqa_status;

typedef enum edgeiqa_pixel_format {
    EDGEIQA_PIXEL_RGB8 = 0, /* bytes R, G, B per pixel (what the Python runtime takes) */
    EDGEIQA_PIXEL_BGR8 = 1  /* bytes B, G, R per pixel (OpenCV's order); converted to RGB */
} edgeiqa_pixel_format;

/* One interleaved 8-bit frame. Row y starts at data + y * stride; stride >= width * 3. */
typedef struct edgeiqa_frame {
    const uint8_t* data;
    int32_t width;
    int32_t height;
    size_t stride; /* bytes from one row to the next (padding allowed) */
    int32_t format; /* an edgeiqa_pixel_format (a fixed-size field: the ABI does not depend on enum sizes) */
} edgeiqa_frame;

/* Options of edgeiqa_open. Initialise with edgeiqa_options_init, then change what you need. */
typedef struct edgeiqa_options {
    uint32_t struct_size; /* sizeof(edgeiqa_options): set by edgeiqa_options_init (ABI check) */
    /* Intra-op threads of each inference. 0: the bundle's target profile `threads` when positive,
     * else OpenVINO's default (every physical core). With k threads scoring at once, keep
     * k * threads <= cores. */
    int32_t threads;
    /* OpenVINO's compiled-model cache folder. With a warm cache the next open loads the compiled
     * network instead of compiling it (much faster boot). NULL: the Python runtime's default,
     * $EDGE_IQA_CACHE_DIR/openvino, else $XDG_CACHE_HOME (or ~/.cache)/edge-iqa/openvino, when it can be
     * created and written (else none; EDGE_IQA_CACHE_DIR="" turns it off); "": no cache. Each network
     * compiles into its own sub-folder (named by its files' checksums, as the Python runtime names it);
     * after compiling, the least recently used sub-folders are removed until the folder holds at most
     * $EDGE_IQA_CACHE_MAX_MB megabytes (default 1024; not a whole number: EDGEIQA_ERR_ARGUMENT). */
    const char* cache_dir;
    /* OpenVINO device name (NULL: "CPU"). */
    const char* device;
} edgeiqa_options;

/* What a bundle is, read from its manifest (strings live as long as the scorer). */
typedef struct edgeiqa_info {
    const char* model;     /* manifest model.name, e.g. "edge_hybrid_n" ("" when absent) */
    const char* runtime;   /* "openvino" */
    const char* precision; /* "fp32" | "fp16" | "int8" */
    int32_t input_height;  /* network input size (preprocess.input_size) */
    int32_t input_width;
    int32_t num_crops;     /* network rows per frame (grid crops) */
    int32_t max_batch;     /* rows per inference */
    int32_t fixed_batch;   /* > 0: the network's static batch (rows are padded); 0: dynamic */
    const char* cache_dir; /* this network's folder of the compiled-model cache ("" when none) */
} edgeiqa_info;

/* "0.1.0" */
EDGEIQA_API const char* edgeiqa_version(void);

/* The message of the last failed call on this thread ("" when none failed yet). */
EDGEIQA_API const char* edgeiqa_last_error(void);

/* Defaults: threads 0, cache_dir NULL, device NULL. */
EDGEIQA_API void edgeiqa_options_init(edgeiqa_options* options);

/* Verify the bundle (manifest, runtime, file names, every file's size and sha256, preprocessing,
 * input shape, batch, output_transform), then load and compile its network. options may be NULL.
 * On success *scorer is set; on failure it is set to NULL. */
EDGEIQA_API edgeiqa_status edgeiqa_open(const char* bundle_dir, const edgeiqa_options* options,
                                        struct edgeiqa_scorer** scorer);

/* Close a scorer (NULL is ignored). */
EDGEIQA_API void edgeiqa_close(struct edgeiqa_scorer* scorer);

EDGEIQA_API edgeiqa_status edgeiqa_get_info(const struct edgeiqa_scorer* scorer, edgeiqa_info* info);

/* Shorthands for edgeiqa_get_info: the manifest's model name and precision (NULL if scorer is NULL). */
EDGEIQA_API const char* edgeiqa_model_name(const struct edgeiqa_scorer* scorer);
EDGEIQA_API const char* edgeiqa_precision(const struct edgeiqa_scorer* scorer);

/* What the bundle's network takes (NULL if scorer is NULL): "uint8", the crops' pixels
 * (num_crops, H, W, 3) as cut from the resized frame, normalised inside the network (manifest
 * schema 2); or "float32", the rows of edgeiqa_preprocess. (Not in edgeiqa_info: its layout is fixed.) */
EDGEIQA_API const char* edgeiqa_input_dtype(const struct edgeiqa_scorer* scorer);

/* Quality score of one frame, on the model's MOS scale (higher is better). */
EDGEIQA_API edgeiqa_status edgeiqa_score(struct edgeiqa_scorer* scorer, const edgeiqa_frame* frame,
                                         double* score);

/* Scores of `count` frames, written to scores[0..count-1]; the frames' crops are run max_batch rows
 * at a time. Every frame is checked before any is run: one bad frame fails the call (its index is in
 * the message) and no score is written. */
EDGEIQA_API edgeiqa_status edgeiqa_score_batch(struct edgeiqa_scorer* scorer, const edgeiqa_frame* frames,
                                               size_t count, double* scores);

/* Debug / parity: the normalised rows of one frame, (num_crops, 3, H, W) float32 NCHW, exactly the
 * tensor the Python runtime's Scorer.spec.apply() gives for the same RGB pixels, whatever the bundle's
 * input dtype: the network input of a "float32" bundle, and what a "uint8" bundle's network computes
 * inside from the crops' pixels (edgeiqa_input_dtype). `capacity` is in floats; *written (may be
 * NULL) receives num_crops * 3 * H * W. */
EDGEIQA_API edgeiqa_status edgeiqa_preprocess(const struct edgeiqa_scorer* scorer, const edgeiqa_frame* frame,
                                              float* tensor, size_t capacity, size_t* written);

/* Debug / parity without a bundle: the same as edgeiqa_preprocess for a preprocessing spec given as
 * the JSON of a manifest's "preprocess" object (PreprocessSpec.to_dict()). */
EDGEIQA_API edgeiqa_status edgeiqa_preprocess_spec(const char* preprocess_json, const edgeiqa_frame* frame,
                                                   float* tensor, size_t capacity, size_t* written);

#ifdef __cplusplus
}
#endif

#endif /* EDGEIQA_H */
