/* make_corpus.c - writes the seed corpus of the decoder fuzzer: valid
 * messages (RLE and fixed-width layers, with and without CRC32C, chunk
 * indexes, accumulated and all-zero layers) and valid paper streams, each
 * prefixed with the 2-byte n that fuzz_decode.c reads.
 * Usage: mcgq_fuzz_make_corpus <directory> (which must exist). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mcgq.h"

static int write_seed(const char *dir, const char *name, uint16_t n,
                      const void *payload, size_t bytes) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "wb");
  if (!f) return 1;
  uint8_t prefix[2] = {(uint8_t)n, (uint8_t)(n >> 8)};
  int bad = fwrite(prefix, 1, 2, f) != 2 || fwrite(payload, 1, bytes, f) != bytes;
  return fclose(f) != 0 || bad;
}

/* A deterministic pseudo-random layer: density in percent. */
static void fill_layer(float *g, size_t n, unsigned density, uint32_t seed) {
  uint32_t x = seed * 2654435761u + 1u;
  for (size_t k = 0; k < n; ++k) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    g[k] = (x % 100u) < density ? (float)((int32_t)(x >> 8) % 1000) / 100.0f : 0.0f;
  }
}

static int make_message(const char *dir, int index, size_t n0, size_t n1,
                        double k, unsigned density, int checksum) {
  float *g0 = (float *)calloc(n0, sizeof(float));
  float *g1 = (float *)calloc(n1, sizeof(float));
  mcgqLayerDesc_t d[2];
  int bad = 1;
  if (!g0 || !g1) goto done;
  fill_layer(g0, n0, density, (uint32_t)index);
  fill_layer(g1, n1, 100u - density, (uint32_t)index + 99u);
  for (int i = 0; i < 2; ++i) {
    mcgqLayerDescInit(&d[i]);
    d[i].g = i ? g1 : g0;
    d[i].n = i ? n1 : n0;
    d[i].u = mcgqRandomWord(1, (uint64_t)index, (uint32_t)i, 0);
    d[i].cfg.k = k;
    d[i].cfg.checksum = checksum;
  }
  size_t bound = 0, bytes = 0;
  if (mcgqEncodeGetMaxOutputSize(d, 2, &bound) != mcgqSuccess) goto done;
  void *out = malloc(bound);
  if (!out) goto done;
  if (mcgqEncodeHost(d, 2, out, bound, &bytes, NULL) == mcgqSuccess) {
    char name[64];
    snprintf(name, sizeof name, "message-%02d", index);
    bad = write_seed(dir, name, (uint16_t)n0, out, bytes);
  }
  free(out);
done:
  free(g0);
  free(g1);
  return bad;
}

static int make_stream(const char *dir, int index, const int32_t *g, size_t n) {
  uint64_t bits = 0;
  if (mcgqRleEncodeHost(g, n, NULL, 0, &bits) != mcgqSuccess) return 1;
  size_t bytes = (size_t)((bits + 7) / 8);
  void *out = malloc(bytes);
  if (!out) return 1;
  int bad = mcgqRleEncodeHost(g, n, out, bytes, &bits) != mcgqSuccess;
  char name[64];
  snprintf(name, sizeof name, "stream-%02d", index);
  if (!bad) bad = write_seed(dir, name, (uint16_t)n, out, bytes);
  free(out);
  return bad;
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s <corpus directory>\n", argv[0]);
    return 2;
  }
  const char *dir = argv[1];
  int bad = 0;
  bad |= make_message(dir, 0, 8, 3, 1.0, 50, 0);
  bad |= make_message(dir, 1, 200, 17, 0.1, 30, 1);
  bad |= make_message(dir, 2, 20000, 40, 0.02, 90, 0);   /* chunk index */
  bad |= make_message(dir, 3, 9000, 100, 2.0, 100, 1);   /* fixed width */
  bad |= make_message(dir, 4, 64, 64, 0.5, 0, 0);        /* all-zero layer */
  bad |= make_message(dir, 5, 16385, 5, 0.01, 20, 1);
  static const int32_t paper[] = {2, -1, 0, 0, 0, 3, 0, 1};
  static const int32_t wide[] = {2147483647, 0, -2147483647, 0, 0, 1};
  static const int32_t zeros[] = {0, 0, 0, 0, 0};
  bad |= make_stream(dir, 0, paper, 8);
  bad |= make_stream(dir, 1, wide, 6);
  bad |= make_stream(dir, 2, zeros, 5);
  bad |= make_stream(dir, 3, NULL, 0);
  if (bad) fprintf(stderr, "%s: could not write the corpus to %s\n", argv[0], dir);
  return bad;
}
