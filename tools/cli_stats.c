/* cli_stats.c - compression ratios and the container encode shared by the
 * quantize, encode and demo subcommands. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

double cli_paper_ratio(uint64_t n, uint64_t stream_bits) {
  /* + 32: the float scale sent with the layer (DESIGN.md section 3). */
  return 32.0 * (double)n / ((double)stream_bits + 32.0);
}

double cli_wire_ratio(uint64_t n, uint64_t wire_bytes) {
  return wire_bytes ? 4.0 * (double)n / (double)wire_bytes : 0.0;
}

int cli_encode_layers(const char *cmd, const mcgqLayerDesc_t *layers,
                      int count, uint8_t **message, size_t *bytes,
                      mcgqLayerStats_t *stats) {
  size_t capacity = 0;
  if (message) *message = NULL;
  mcgqResult_t r = mcgqEncodeGetMaxOutputSize(layers, count, &capacity);
  if (r != mcgqSuccess) return cli_library_error(cmd, "encode", r), -1;
  uint8_t *out = (uint8_t *)cli_alloc(cmd, capacity, 1);
  if (!out) return -1;
  r = mcgqEncodeHost(layers, count, out, capacity, bytes, stats);
  if (r != mcgqSuccess) {
    free(out);
    cli_library_error(cmd, "encode", r);
    return -1;
  }
  if (message) *message = out;
  else free(out);
  return 0;
}
