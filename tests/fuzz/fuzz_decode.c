/* fuzz_decode.c - libFuzzer target over every host decoder entry point.
 *
 * Input: 2 bytes (little-endian) giving n for the standalone paper-stream
 * decoder (masked to 14 bits, so at most 16383 elements), then a payload
 * that is fed both to mcgqRleDecodeHost (with that n) and, as a container
 * message, to mcgqMessageGetInfo / GetLayer and, when the message is valid
 * and small, to mcgqDecodeIntsHost, mcgqDecodeHost and
 * mcgqDecodeAverageHost (the payload as two ranks).  The decoders must
 * never crash, read out of bounds (ASan) or hit undefined behaviour (UBSan),
 * whatever the bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mcgq.h"

/* Messages may claim up to 2^32-1 elements per layer in a few bytes; the
 * harness only decodes those it can give a buffer for. */
#define FUZZ_MAX_TOTAL_N ((uint64_t)1 << 22)

static void fuzz_rle(const uint8_t *payload, size_t bytes, uint64_t n) {
  int32_t *g = (int32_t *)malloc((size_t)(n ? n : 1) * sizeof *g);
  if (!g) return;
  mcgqRleDecodeHost(payload, bytes, n, g);
  free(g);
}

static void fuzz_message(const uint8_t *payload, size_t bytes) {
  mcgqMessageInfo_t info;
  if (mcgqMessageGetInfo(payload, bytes, &info) != mcgqSuccess) return;
  for (uint32_t i = 0; i < info.layer_count && i < 64; ++i) {
    mcgqMessageLayer_t layer;
    mcgqMessageGetLayer(payload, bytes, i, &layer);
  }
  if (info.total_n > FUZZ_MAX_TOTAL_N) return;
  size_t n = (size_t)info.total_n;
  int32_t *g = (int32_t *)malloc(n * sizeof *g);
  float *out = (float *)malloc(n * sizeof *out);
  float *scales = (float *)malloc((size_t)info.layer_count * sizeof *scales);
  if (g && out && scales) {
    mcgqDecodeIntsHost(payload, bytes, g, n, scales, info.layer_count);
    mcgqDecodeHost(payload, bytes, out, n);
    const void *in[2] = {payload, payload};
    size_t sizes[2] = {bytes, bytes};
    mcgqDecodeAverageHost(in, sizes, 2, out, n);
  }
  free(g);
  free(out);
  free(scales);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2) return 0;
  uint64_t n = (uint64_t)(data[0] | (data[1] << 8)) & 0x3fffu;
  /* An exact-size copy, so any read past the payload is past an allocation. */
  size_t bytes = size - 2;
  uint8_t *payload = (uint8_t *)malloc(bytes ? bytes : 1);
  if (!payload) return 0;
  if (bytes) memcpy(payload, data + 2, bytes);
  fuzz_rle(payload, bytes, n);
  fuzz_message(payload, bytes);
  free(payload);
  return 0;
}
