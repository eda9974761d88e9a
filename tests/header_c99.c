/* Compiled as strict C99 with -pedantic -Werror: the public header must be
 * valid C.  The function lets the C++ test see that this object linked. */
#include "mcgq.h"

int mcgq_header_c99_version(void) {
  mcgqLayerConfig_t cfg = MCGQ_LAYER_CONFIG_INITIALIZER;
  return cfg.struct_size == sizeof(mcgqLayerConfig_t) ? mcgqGetVersion() : -1;
}
